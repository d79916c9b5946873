"""The figures that benchmarks/criteria_table.py and drop_analysis.py --summary read off run records
(hand-written records, so every expected figure is known), and the record helpers they share with bench."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunekit.records import EVENTS, METRICS, RunDir, best_after, drop_costs, first_event, mean_std, restore_gains

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def scripts(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import criteria_table
    import drop_analysis

    return criteria_table, drop_analysis


def write_run(path: Path, test_accs: list[float], events=(), finished=True) -> RunDir:
    """A run record with one metrics line per epoch (epoch k = after k epochs) and the given events."""
    rd = RunDir(path)
    path.mkdir(parents=True)
    for epoch, acc in enumerate(test_accs, 1):
        rd.append(
            METRICS,
            {
                "epoch": epoch,
                "test_acc": acc,
                "train_acc": 0.9 + epoch / 1000,
                "test_loss": 2.0 - acc,
                "seconds": 1.0,
                "images_per_s": 100.0,
            },
        )
    for event in events:
        rd.append(EVENTS, event)
    if finished:
        rd.write_summary({"final_test_acc": test_accs[-1]})
    return rd


def drop(epoch: int, dropped: dict[str, list[int]]) -> dict:
    return {
        "epoch": epoch,
        "event": "drop",
        "dropped": dropped,
        "order": list(dropped),
        "sizes": {g: 8 for g in dropped},
    }


def test_record_helpers(tmp_path):
    a = write_run(tmp_path / "a", [0.1, 0.5, 0.3, 0.4], [drop(2, {"c1": [0]}), {"epoch": 3, "event": "restore"}])
    b = write_run(tmp_path / "b", [0.6, 0.2, 0.2, 0.2])
    assert a.first_event() == 2 and b.first_event() is None
    assert first_event([a, b]) == 2 and first_event([b]) is None
    metrics = b.read_jsonl(METRICS)
    assert best_after(metrics, None)["epoch"] == 1
    assert best_after(metrics, 1)["test_acc"] == 0.2 and best_after(metrics, 1)["epoch"] == 2  # first of the ties
    assert best_after(metrics, 4) is None
    assert mean_std([0.5]) == (0.5, 0.0)
    assert mean_std([1.0, 3.0]) == pytest.approx((2.0, 2**0.5))


def test_restore_gains_pair_each_restore_with_the_epoch_before_and_the_two_after(tmp_path):
    # metrics epoch k = after k epochs; an event record's epoch e = the 0-based epoch at whose start it happened,
    # so the epoch before it is metrics epoch e and the ones it opens are e + 1 and e + 2
    accs = [0.30, 0.40, 0.35, 0.36, 0.45, 0.50, 0.52]  # epochs 1..7
    events = [
        drop(1, {"c1": [0]}),
        {"epoch": 3, "event": "restore"},
        drop(4, {"c1": [1]}),
        {"epoch": 6, "event": "restore"},
        {"epoch": 7, "event": "restore"},
    ]
    rd = write_run(tmp_path / "r", accs, events)
    metrics = rd.read_jsonl(METRICS)
    gains = restore_gains(rd.read_jsonl(EVENTS), metrics)
    # restore at 3: before it metrics epoch 3 (0.35), 1 epoch after epoch 4 (0.36), 2 epochs after epoch 5 (0.45)
    assert gains[0] == pytest.approx((0.01, 0.10))
    # restore at 6: epoch 6 (0.50) -> epoch 7 (0.52); no epoch 8 yet. Restore at 7 has no epoch after it: left out
    assert len(gains) == 2 and gains[1][0] == pytest.approx(0.02) and gains[1][1] is None
    # the same pairing as drop_costs (whose sign is the other way): drop at 1 costs acc(1) - acc(2)
    assert drop_costs(rd.read_jsonl(EVENTS), metrics) == pytest.approx([0.30 - 0.40, 0.36 - 0.45])
    assert restore_gains([drop(1, {"c1": [0]})], metrics) == [] and restore_gains(events, []) == []


def test_drop_report_shows_each_restores_gains(tmp_path, scripts):
    _, drop_analysis = scripts
    rd = write_run(
        tmp_path / "repr",
        [0.50, 0.40, 0.46, 0.52],
        [drop(1, {"c1": [0]}), {"epoch": 2, "event": "restore", "log": ["c1: keep"]}],
    )
    rows = [line for line in drop_analysis.report(rd.path).splitlines() if line.startswith("| ")]
    assert "restore: gain after 1 / 2 epochs (points)" in rows[0]
    assert rows[1] == "| 2 | drop | 50.00 | 40.00 | – | c1 1/8 |"
    assert rows[2] == "| 3 | restore | 40.00 | 46.00 | 6.0, 12.0 | c1: keep |"
    short = write_run(tmp_path / "short", [0.50, 0.40, 0.46], [{"epoch": 2, "event": "restore"}], finished=False)
    assert "| 3 | restore | 40.00 | 46.00 | 6.0, – |" in drop_analysis.report(short.path)


def test_criteria_table_reads_each_ranker_off_its_runs(tmp_path, scripts):
    criteria_table, _ = scripts
    paper, criteria = tmp_path / "paper", tmp_path / "criteria"
    write_run(paper / "standard_seed0", [0.70, 0.60, 0.50])
    write_run(paper / "standard_seed1", [0.40, 0.55, 0.52])
    write_run(paper / "repr_seed0", [0.70, 0.65, 0.62], [drop(1, {"c1": [0]})])
    write_run(paper / "repr_seed1", [0.40, 0.66, 0.61], [drop(1, {"c1": [1]})])
    write_run(criteria / "repr_ranker=l1_seed1", [0.40, 0.45, 0.58], [drop(1, {"c1": [2]})])
    write_run(criteria / "repr_ranker=taylor_seed1", [0.40, 0.45], [drop(1, {"c1": [3]})], finished=False)
    rows = {
        line.split(" | ")[0].lstrip("| "): line.split(" | ")
        for line in criteria_table.table(paper, criteria, [0, 1]).splitlines()[2:]
    }
    # best after epoch 1; drop costs: 0.70 - 0.65 and 0.40 - 0.66 (a gain) at the drop after epoch 1
    assert rows["none (`standard`)"][1:] == ["72.1", "50.00 / 52.00", "51.00 ± 1.41 (2)", "57.50", "– |"]
    assert rows["orthogonality (`repr`)"][2:] == ["62.00 / 61.00", "61.50 ± 0.71 (2)", "65.50", "-10.5 |"]
    assert rows["weight magnitude (`l1`)"][2:] == ["– / 58.00", "58.00 ± 0.00 (1)", "58.00", "-5.0 |"]
    assert rows["Taylor"][2:4] == ["– / at epoch 2", "not finished"]
    assert rows["greedy oracle"][2:4] == ["– / –", "not run yet"]


def test_drop_summary_rows(tmp_path, scripts):
    _, drop_analysis = scripts
    standard = write_run(tmp_path / "standard", [0.50, 0.70, 0.60, 0.65])
    repr_run = write_run(
        tmp_path / "repr",
        [0.50, 0.55, 0.40, 0.62],
        [
            drop(1, {"conv1": [0, 1], "conv10": [4]}),
            {"epoch": 2, "event": "restore"},
            drop(3, {"conv2": [5], "conv1": [1, 2]}),
        ],
    )
    early = write_run(tmp_path / "early", [0.50], finished=False)  # not yet past the first event
    text = drop_analysis.summary([standard.path, repr_run.path])
    assert drop_analysis.summary([repr_run.path, early.path]).splitlines()[-1].split(" | ")[1:4] == ["1", "50.00", "–"]
    head, _, row_standard, row_repr = text.splitlines()
    assert "best after epoch 1 (epoch)" in head and "(conv1+conv2+conv10)" in head  # layers in natural order
    assert row_standard.split(" | ")[1:6] == ["4", "65.00", "70.00 (2)", "90.40", "1.35"]
    # drop at epoch 1 costs acc(1) - acc(2) = -5 points; drop at epoch 3 costs acc(3) - acc(4) = -22 points
    # the second drop takes conv1's filter 1 again (and 2 and conv2's 5 for the first time)
    # the restore at epoch 2 (after 2 epochs: 0.55): acc(3) - acc(2) = -15 points, acc(4) - acc(2) = +7 points
    assert row_repr.split(" | ")[1:] == [
        "4",
        "62.00",
        "62.00 (4)",
        "90.40",
        "1.38",
        "-5.0 / -22.0",
        "2+0+1; 2+1+0",
        "1",
        "-15.0, 7.0 |",
    ]
    assert row_standard.endswith("| – | – | – | – |")


def test_summary_tells_apart_runs_of_the_same_name(tmp_path, scripts):
    _, drop_analysis = scripts
    small = write_run(tmp_path / "c3_32p" / "standard_seed0", [0.50, 0.60])
    large = write_run(tmp_path / "c3_32a" / "standard_seed0", [0.50, 0.70])
    other = write_run(tmp_path / "c3_32a" / "repr_seed0", [0.50, 0.65])
    rows = drop_analysis.summary([small.path, large.path, other.path]).splitlines()[2:]
    assert [r.split(" | ")[0] for r in rows] == ["| c3_32p/standard_seed0", "| c3_32a/standard_seed0", "| repr_seed0"]
    assert rows[1].split(" | ")[2] == "70.00"


def test_a_drop_cost_that_rounds_to_zero_prints_without_a_sign(tmp_path, scripts):
    criteria_table, drop_analysis = scripts
    # the drop after epoch 1 gains 0.04 points in its first epoch: a cost of -0.04, which rounds to 0.0
    run = write_run(tmp_path / "c" / "repr_ranker=l1_seed0", [0.6004, 0.6008, 0.6], [drop(1, {"conv1": [0]})])
    assert drop_analysis.summary([run.path]).splitlines()[-1].split(" | ")[6] == "0.0"
    rows = criteria_table.table(tmp_path / "p", tmp_path / "c", [0]).splitlines()
    row = next(r for r in rows if r.startswith("| weight magnitude"))
    assert row.endswith("| 0.0 |")


def test_drop_report_scores_compare_kept_with_dropped_filters(tmp_path, scripts):
    _, drop_analysis = scripts
    first = {**drop(1, {"c1": [0, 1]}), "scores": {"c1": [0.0, 1.0, 2.0, 4.0]}}
    # a second drop before any restore: filters 0 and 1 are out already, so only 2 and 3 are in play
    second = {**drop(2, {"c1": [2]}), "scores": {"c1": [9.0, 9.0, 3.0, 5.0]}}
    rd = write_run(tmp_path / "repr", [0.5, 0.4, 0.3], [first, second])
    row = next(line for line in drop_analysis.report(rd.path).splitlines() if line.startswith("| c1 |"))
    assert row == "| c1 | 3.0000 / 0.5000 | 5.0000 / 3.0000 |"


def test_a_benchmark_script_given_a_folder_that_is_not_a_run_says_so_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "orthogonality_evolution.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"error: {tmp_path} is not a prunekit run (no config.json); give a folder made by `prunekit run`"
    )


def test_the_gpu_epoch_benchmark_without_a_gpu_says_so_in_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "gpu_epoch.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_epoch.py"), "--epochs", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 2 and not out.exists()
    assert (
        done.stderr.strip().startswith("error: no CUDA GPU is visible to torch here;")
        and "Traceback" not in done.stderr
    )


def test_drop_report_prints_tiny_scores_in_scientific_notation(tmp_path, scripts):
    _, drop_analysis = scripts
    event = {**drop(1, {"c1": [0]}), "scores": {"c1": [1e-6, 3e-5, 5e-5]}}
    rd = write_run(tmp_path / "repr", [0.5, 0.4], [event])
    row = next(line for line in drop_analysis.report(rd.path).splitlines() if line.startswith("| c1 |"))
    assert row == "| c1 | 4.000e-05 / 1.000e-06 |"
    # each value by its own size: a large kept mean beside a tiny dropped one keeps both readable
    event = {**drop(1, {"c1": [0]}), "scores": {"c1": [5.75e-5, 0.02, 0.0162]}}
    rd = write_run(tmp_path / "mixed", [0.5, 0.4], [event])
    row = next(line for line in drop_analysis.report(rd.path).splitlines() if line.startswith("| c1 |"))
    assert row == "| c1 | 0.0181 / 5.750e-05 |"
