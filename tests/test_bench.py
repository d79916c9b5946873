"""`prunekit bench`: a tiny grid on synthetic data, resumable, with tables that match the runs."""

import csv
import json
import re

import pytest
from helpers import run_cli

from prunekit.records import METRICS, RunDir
from prunekit.workers import available_cores

GRID = [
    "bench",
    "--methods",
    "standard,repr",
    "--seeds",
    "0,1",
    "--dataset",
    "synthetic",
    "--model",
    "c2_8",
    "--epochs",
    "3",
    "--s1",
    "1",
    "--s2",
    "1",
    "--batch-size",
    "64",
    "--quiet",
]


def test_bench_grid_table_matches_records(tmp_path, capsys):
    out = tmp_path / "grid"
    code, stdout, err = run_cli([*GRID, "--out", str(out)], capsys)  # s1/s2 apply to repr, not to standard
    assert code == 0, err
    rows = {r["method"]: r for r in csv.DictReader((out / "table.csv").open())}
    assert set(rows) == {"standard", "repr"}
    for method, row in rows.items():
        summaries = [json.loads((out / f"{method}_seed{s}" / "summary.json").read_text()) for s in (0, 1)]
        assert float(row["final_test_acc_mean"]) == pytest.approx(sum(x["final_test_acc"] for x in summaries) / 2)
        assert float(row["best_test_acc_mean"]) == pytest.approx(sum(x["best_test_acc"] for x in summaries) / 2)
        gap = [x["final_train_acc"] - x["final_test_acc"] for x in summaries]
        assert float(row["gap_mean"]) == pytest.approx(sum(gap) / 2)
        # repr's first event comes after epoch 1 (--s1 1): the best of epochs 2-3, for standard's rows too
        later = [
            max(m["test_acc"] for m in RunDir(out / f"{method}_seed{s}").read_jsonl(METRICS) if m["epoch"] > 1)
            for s in (0, 1)
        ]
        assert float(row["best_after_first_event_mean"]) == pytest.approx(sum(later) / 2)
    assert float(rows["standard"]["overhead"]) == 0.0  # the first method is the baseline
    assert rows["repr"]["overhead"] != ""
    assert json.loads((out / "repr_seed0" / "config.json").read_text())["schedule_args"]["s1"] == 1
    md = (out / "table.md").read_text()
    assert md.splitlines()[0].startswith("| method |") and "| repr |" in md
    code, _, err = run_cli([*GRID, "--set", "bogus=1,2", "--out", str(tmp_path / "g2")], capsys)
    assert code == 2 and "no method in this grid takes option(s) bogus" in err


def test_bench_runs_resumes_and_tabulates(tmp_path, capsys):
    out = tmp_path / "grid"
    argv = [
        "bench",
        "--methods",
        "standard,repr",
        "--seeds",
        "0",
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "3",
        "--s1",
        "1",
        "--s2",
        "1",
        "--batch-size",
        "64",
        "--quiet",
        "--set",
        "next_layer=zero,random",
        "--out",
        str(out),
    ]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err  # next_layer applies to repr; standard runs once per column as a baseline
    assert (out / "standard_next_layer=random_seed0" / "summary.json").exists()
    assert (
        json.loads((out / "repr_next_layer=random_seed0" / "config.json").read_text())["reinitializer_args"][
            "next_layer"
        ]
        == "random"
    )
    out = tmp_path / "grid2"
    argv = [
        "bench",
        "--methods",
        "repr,random",
        "--seeds",
        "0,1",
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "3",
        "--batch-size",
        "64",
        "--quiet",
        "--set",
        "schedule.s1=1",
        "--set",
        "schedule.s2=1",
        "--set",
        "ranker.scope=global,layer",
        "--out",
        str(out),
    ]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(names) == 2 * 2 * 2
    assert "repr_ranker.scope=layer_schedule.s1=1_schedule.s2=1_seed1" in names  # keys sorted in names
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [r["method"] for r in rows] == [
        "repr_ranker.scope=global_schedule.s1=1_schedule.s2=1",
        "random_ranker.scope=global_schedule.s1=1_schedule.s2=1",
        "repr_ranker.scope=layer_schedule.s1=1_schedule.s2=1",
        "random_ranker.scope=layer_schedule.s1=1_schedule.s2=1",
    ]
    for row in rows:
        finals = []
        for seed in (0, 1):
            summary = json.loads((out / f"{row['method']}_seed{seed}" / "summary.json").read_text())
            finals.append(summary["final_test_acc"])
        assert float(row["final_test_acc_mean"]) == pytest.approx(sum(finals) / 2)
        assert row["runs"] == "2/2 finished"
    assert "| repr_ranker.scope=global_schedule.s1=1" in (out / "table.md").read_text()
    assert (out / "curves.png").exists()
    # a second call skips finished cells; removing one summary makes it resume that cell only
    victim = out / "random_ranker.scope=layer_schedule.s1=1_schedule.s2=1_seed0"
    (victim / "summary.json").unlink()
    before = (out / names[0] / "metrics.jsonl").read_text()
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    assert err.count(": done") == 7 and err.count(": resumes after epoch") == 1
    assert (victim / "summary.json").exists()
    assert (out / names[0] / "metrics.jsonl").read_text() == before
    # the same grid with its --set options in another order and on a named device is the same grid
    reordered = [
        *argv[:14],
        "--set",
        "ranker.scope=global,layer",
        "--set",
        "schedule.s2=1",
        "--set",
        "schedule.s1=1",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    code, stdout, err = run_cli(reordered, capsys)
    assert code == 0 and err.count(": done") == 8, err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == names
    # a different base configuration into the same folder is refused
    code, _, err = run_cli([*argv[:-2], "--lr", "0.5", "--out", str(out)], capsys)
    assert code == 2 and "other base options" in err


def test_bench_refuses_a_cell_folder_of_other_settings(tmp_path, capsys):
    out = tmp_path / "grid"
    code, _, err = run_cli(
        [
            "run",
            "--method",
            "standard",
            "--dataset",
            "synthetic",
            "--model",
            "c2_8",
            "--epochs",
            "1",
            "--lr",
            "0.5",
            "--out",
            str(out),
            "--name",
            "standard_seed0",
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    code, _, err = run_cli(
        [
            "bench",
            "--methods",
            "standard",
            "--dataset",
            "synthetic",
            "--model",
            "c2_8",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--quiet",
        ],
        capsys,
    )
    assert code == 2 and "holds a run with other settings (lr)" in err
    assert not (out / "bench.json").exists()  # the refused grid left no record that would claim that run


def test_grid_input_that_would_duplicate_or_mislabel_cells_is_one_line_and_writes_nothing(tmp_path, capsys):
    base = ["bench", "--dataset", "synthetic", "--model", "c2_8", "--epochs", "1", "--quiet"]
    cases = [
        (["--methods", "repr,repr"], "--methods lists repr more than once"),
        (["--methods", "standard", "--seeds", "0,0"], "--seeds lists 0 more than once"),
        (["--methods", ","], "--methods names no method"),
        (["--methods", "repr", "--set", "ranker=l1,l1"], "lists the value l1 twice"),
        (["--methods", "repr", "--set", "exclude_first=true,True"], "lists the value True twice"),
        (["--methods", "repr", "--set", "exclude=features.0,[features.0]"], "lists the value features.0 twice"),
        (["--methods", "standard", "--set", "device=cpu,cuda"], "--set device=... cannot be a grid axis"),
        (["--methods", "standard", "--set", "seed=1,2"], "--set seed=... cannot be a grid axis"),
        (["--methods", "standard", "--set", "data-dir=a,b"], "--set data_dir=... cannot be a grid axis"),
        (["--methods", "repr", "--set", "ranker=l1", "--set", "ranker=random"], "--set ranker is given twice"),
        (
            ["--methods", "repr", "--set", "next-layer=zero", "--set", "next_layer=random"],
            "--set next_layer is given twice",
        ),
        (["--methods", "repr", "--set", "=l1"], "--set takes key=value[,value...]"),
        (["--methods", "repr", "--set", "exclude=[features.0"], "cannot read the values"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"grid{i}"
        code, _, err = run_cli([*base, *args, "--out", str(out)], capsys)
        assert code == 2 and message in err and "Traceback" not in err, (args, err)
        assert not out.exists()


def test_a_list_value_in_a_grid_axis_keeps_its_commas(tmp_path, capsys):
    from prunekit import bench as grid_mod

    # the key is spelled as in config files whatever the dashes, so the cells' names do not depend on them
    assert (
        grid_mod.parse_grid_sets(["next-layer=random", "lr_schedule=2024-11-30"])
        == grid_mod.parse_grid_sets(["next_layer=random", "lr-schedule=2024-11-30"])
        == [{"next_layer": "random", "lr_schedule": "2024-11-30"}]
    )
    assert grid_mod.parse_grid_sets(["exclude=[features.0],[features.0, features.2]", "ranker=l1"]) == [
        {"exclude": ["features.0"], "ranker": "l1"},
        {"exclude": ["features.0", "features.2"], "ranker": "l1"},
    ]
    out = tmp_path / "grid"
    code, _, err = run_cli(
        [
            "bench",
            "--methods",
            "repr",
            "--set",
            "exclude=[features.0],[features.2]",
            "--dataset",
            "synthetic",
            "--model",
            "c2_8",
            "--epochs",
            "3",
            "--s1",
            "1",
            "--s2",
            "1",
            "--batch-size",
            "64",
            "--quiet",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    for spared, other in (("features.0", "features.2"), ("features.2", "features.0")):
        events = [json.loads(line) for line in (out / f"repr_exclude={spared}_seed0" / "events.jsonl").open()]
        drops = [e["dropped"] for e in events if e["event"] == "drop"]
        assert drops and all(spared not in d and other in d for d in drops)


def test_a_damaged_summary_is_one_line(tmp_path, capsys):
    out = tmp_path / "grid"
    argv = [
        "bench",
        "--methods",
        "standard",
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--quiet",
        "--out",
        str(out),
    ]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    (out / "standard_seed0" / "summary.json").write_text("{")
    code, _, err = run_cli([*argv, "--table-only"], capsys)
    assert code == 2 and "summary is damaged" in err and "Traceback" not in err


def test_table_only_on_an_empty_folder_is_a_user_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "nothing_ran"
    code, _, err = run_cli([*GRID, "--out", str(out), "--table-only"], capsys)
    assert code != 0 and "run without --table-only" in err and "Traceback" not in err
    assert not out.exists()


def test_a_grid_on_a_missing_gpu_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "gpu_grid"
    code, _, err = run_cli([*GRID, "--out", str(out), "--device", "cuda"], capsys)
    assert code == 2 and "no CUDA GPU is available" in err and "Traceback" not in err
    assert not out.exists()


def test_more_threads_than_cores_is_warned_and_the_grid_still_runs(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr("prunekit.workers.available_cores", lambda: 1)
    before = torch.get_num_threads()
    try:
        grid = [
            "bench",
            "--methods",
            "standard",
            "--seeds",
            "0",
            "--dataset",
            "synthetic",
            "--model",
            "c2_8",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            str(tmp_path / "g"),
        ]
        code, _, err = run_cli([*grid, "--threads", "2"], capsys)
        assert code == 0, err
        assert "1 cell(s) x 2 threads = 2 threads on 1 cores" in err
        assert (tmp_path / "g" / "standard_seed0" / "summary.json").exists()
        code, _, err = run_cli([*grid, "--threads", "1"], capsys)
        assert code == 0 and "warning" not in err
    finally:
        torch.set_num_threads(before)


def test_bench_jobs_runs_cells_in_worker_processes_and_reports_a_failed_cell(tmp_path, capsys):
    out = tmp_path / "grid"
    argv = [
        "bench",
        "--methods",
        "standard,repr",
        "--seeds",
        "0",
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "3",
        "--s1",
        "1",
        "--s2",
        "1",
        "--batch-size",
        "64",
        "--quiet",
        "--jobs",
        "2",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    rows = {r["method"]: r for r in csv.DictReader((out / "table.csv").open())}
    for method in ("standard", "repr"):
        summary = json.loads((out / f"{method}_seed0" / "summary.json").read_text())
        assert float(rows[method]["final_test_acc_mean"]) == pytest.approx(summary["final_test_acc"])
        assert "epoch 3/3" in (out / f"{method}_seed0.log").read_text()  # each worker logs to its own file
    # a worker that fails is named with the last line of its log, and the grid exits non-zero
    victim = out / "repr_seed0"
    (victim / "summary.json").unlink()
    (victim / "checkpoint.pt").write_bytes(b"not a checkpoint")
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "1 cell(s) failed (repr_seed0)" in err and "Traceback" not in err
    assert "is damaged" in err and (out / "standard_seed0" / "summary.json").exists()


def test_a_cell_waits_for_the_warmup_a_sibling_will_keep_and_its_leader_gets_the_idle_cores(
    tmp_path, capsys, monkeypatch
):
    import signal

    import prunekit.workers as workers

    monkeypatch.setattr(workers, "POLL_SECONDS", 0.1)  # sees the warm-up while the leader still has epochs to go
    out = tmp_path / "grid"
    argv = [
        "bench",
        "--methods",
        "standard,repr",
        "--seeds",
        "0",
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "12",
        "--s1",
        "2",
        "--s2",
        "1",
        "--batch-size",
        "64",
        "--quiet",
        "--jobs",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as in a shell's background job: workers inherit it
    try:
        code, _, err = run_cli(argv, capsys)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert code == 0, err
    cores = available_cores()
    # standard comes first in the grid but would compute repr's first two epochs again: it waits
    assert f"repr_seed0: starts (threads {cores}," in err
    assert "standard_seed0: starts from the warm-up of repr_seed0 (epochs 1-2)" in err
    if cores > 1:
        assert re.search(
            rf"repr_seed0: resumes after epoch \d+ to share the cores with standard_seed0 \(threads {cores // 2}\)", err
        ), err
        assert "interrupted; finished epochs are kept" in (out / "repr_seed0.log").read_text()  # stopped, not killed
    assert json.loads((out / "standard_seed0" / "fork.json").read_text())["epoch"] == 2
    assert all((out / n / "summary.json").exists() for n in ("standard_seed0", "repr_seed0"))
    assert (
        _records_without_timing(out / "standard_seed0" / "metrics.jsonl")[:2]
        == _records_without_timing(out / "repr_seed0" / "metrics.jsonl")[:2]
    )


def test_warmup_leaders_pick_a_sibling_that_will_keep_a_usable_warmup_and_leaders_run_first(tmp_path, capsys):
    from prunekit import bench as grid_mod

    def plan(methods, sets=()):
        cells = grid_mod.grid(methods, grid_mod.parse_grid_sets(list(sets)), [0])
        base = {"dataset": "synthetic", "model": "c2_8", "epochs": 6, "s1": 2, "s2": 1}
        configs = grid_mod.cell_configs(cells, base, tmp_path / "grid")
        leaders = grid_mod.warmup_leaders(tmp_path / "grid", cells, configs)
        return cells, leaders, [cells[i].name for i in grid_mod.leaders_first(cells, leaders)]

    cells, leaders, order = plan(["standard", "repr", "random"])
    # standard keeps no warm-up and may wait for a later cell; random keeps one, so it waits only for an earlier one
    assert leaders == {"standard_seed0": "repr_seed0", "random_seed0": "repr_seed0"}
    assert order == ["repr_seed0", "standard_seed0", "random_seed0"]
    _, leaders, _ = plan(["repr"], ["lr=0.05,0.1"])
    assert leaders == {}  # other training settings share nothing
    _, leaders, _ = plan(["repr"], ["schedule.s1=1,2"])
    assert leaders == {"repr_schedule.s1=2_seed0": "repr_schedule.s1=1_seed0"}  # epoch 1 is before its own drop
    _, leaders, _ = plan(["repr"], ["schedule.s1=2,1"])
    assert leaders == {}  # the epoch-2 warm-up comes after s1=1's drop; s1=2 may not wait for a later cell
    # a sibling already past its first event without a kept warm-up will never keep one
    code, _, err = run_cli(
        [
            "bench",
            "--methods",
            "repr",
            "--seeds",
            "0",
            "--dataset",
            "synthetic",
            "--model",
            "c2_8",
            "--epochs",
            "6",
            "--s1",
            "2",
            "--s2",
            "1",
            "--quiet",
            "--out",
            str(tmp_path / "grid"),
        ],
        capsys,
    )
    assert code == 0, err
    for name in ("warmup.pt", "warmup.json"):
        (tmp_path / "grid" / "repr_seed0" / name).unlink()
    _, leaders, _ = plan(["standard", "repr"])
    assert leaders == {}


@pytest.mark.slow
def test_sigterm_stops_every_worker_and_keeps_their_finished_epochs(tmp_path, capsys, monkeypatch):
    """SIGTERM to `bench --jobs` (like Ctrl-C) ends all its workers; their finished epochs stay on disk."""
    import os
    import signal
    import threading
    import time

    out = tmp_path / "grid"
    argv = [
        "bench",
        "--methods",
        "standard",
        "--seeds",
        "0,1",
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "500",
        "--batch-size",
        "64",
        "--quiet",
        "--jobs",
        "2",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    started = []
    real_popen = __import__("subprocess").Popen

    def recording_popen(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    returned = threading.Event()

    def stop_after_first_epoch():
        metrics = out / "standard_seed0" / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while (
            time.monotonic() < deadline
            and not returned.is_set()
            and not (metrics.exists() and metrics.read_text().count("\n") >= 1)
        ):
            time.sleep(0.2)
        if not returned.is_set():
            os.kill(os.getpid(), signal.SIGTERM)

    import prunekit.workers as workers

    monkeypatch.setattr(workers.subprocess, "Popen", recording_popen)
    threading.Thread(target=stop_after_first_epoch, daemon=True).start()
    try:
        code, _, err = run_cli(argv, capsys)
    finally:
        returned.set()
    assert code == 130 and "rerun the same command to resume" in err
    assert len(started) == 2 and all(p.poll() is not None for p in started)  # no worker outlives the grid
    done = len((out / "standard_seed0" / "metrics.jsonl").read_text().splitlines())
    assert 1 <= done < 500 and not (out / "standard_seed0" / "summary.json").exists()


def test_ablate_varies_one_value_at_a_time_and_finished_runs_can_be_moved_or_linked(tmp_path, capsys):
    out = tmp_path / "ablations"
    common = [
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "3",
        "--s1",
        "1",
        "--s2",
        "1",
        "--batch-size",
        "64",
        "--quiet",
    ]
    argv = [
        "bench",
        "--methods",
        "repr",
        "--ablate",
        "--set",
        "next_layer=random",
        "--set",
        "reinitializer=default,keep",
        *common,
    ]
    code, _, err = run_cli([*argv, "--out", str(out)], capsys)
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert names == [
        "repr_next_layer=random_seed0",
        "repr_reinitializer=default_seed0",
        "repr_reinitializer=keep_seed0",
        "repr_seed0",
    ]  # a default column, then one change each
    configs = {n: json.loads((out / n / "config.json").read_text()) for n in names}
    assert configs["repr_next_layer=random_seed0"]["reinitializer"] == "nullspace"
    assert configs["repr_next_layer=random_seed0"]["reinitializer_args"]["next_layer"] == "random"
    assert configs["repr_reinitializer=keep_seed0"]["reinitializer"] == "keep"
    assert configs["repr_seed0"]["reinitializer_args"]["next_layer"] == "zero"
    rows = [r["method"] for r in csv.DictReader((out / "table.csv").open())]
    assert rows == ["repr", "repr_next_layer=random", "repr_reinitializer=default", "repr_reinitializer=keep"]

    def per_epoch(name):  # mean seconds of the epochs a cell trained itself
        fork = out / name / "fork.json"
        start = json.loads(fork.read_text())["epoch"] if fork.exists() else 0
        own = [json.loads(line)["seconds"] for line in (out / name / "metrics.jsonl").read_text().splitlines()][start:]
        return sum(own) / len(own)

    overhead = {r["method"]: float(r["overhead"]) for r in csv.DictReader((out / "table.csv").open())}
    assert overhead["repr"] == 0.0  # one method: every column against the default one, not against itself
    assert overhead["repr_reinitializer=keep"] == pytest.approx(
        100 * (per_epoch("repr_reinitializer=keep_seed0") / per_epoch("repr_seed0") - 1)
    )
    # a moved grid folder still resumes: every cell is found finished, nothing reruns
    moved = tmp_path / "moved"
    out.rename(moved)
    code, _, err = run_cli([*argv, "--out", str(moved)], capsys)
    assert code == 0 and err.count(": done") == 4, err
    # a finished run linked into another grid under the name of an identical cell counts as that cell
    other = tmp_path / "criteria"
    other.mkdir()
    (other / "repr_ranker=orthogonality_seed0").symlink_to(moved / "repr_seed0", target_is_directory=True)
    code, _, err = run_cli(
        ["bench", "--methods", "repr", "--set", "ranker=orthogonality", *common, "--out", str(other)], capsys
    )
    assert code == 0 and err.count(": done") == 1, err
    row = next(csv.DictReader((other / "table.csv").open()))
    summary = json.loads((moved / "repr_seed0" / "summary.json").read_text())
    assert float(row["final_test_acc_mean"]) == pytest.approx(summary["final_test_acc"])


def _records_without_timing(path):
    skip = {"seconds", "train_seconds", "images_per_s"}
    return [{k: v for k, v in json.loads(line).items() if k not in skip} for line in path.read_text().splitlines()]


def test_a_cell_started_from_a_siblings_warmup_matches_one_run_from_scratch(tmp_path, capsys):
    import torch

    grid = [
        "bench",
        "--methods",
        "repr,standard,random",
        "--seeds",
        "0",
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "5",
        "--s1",
        "2",
        "--s2",
        "1",
        "--batch-size",
        "64",
        "--momentum",
        "0.9",
        "--quiet",
    ]
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    code, _, err = run_cli([*grid, "--out", str(shared)], capsys)
    assert code == 0, err
    assert err.count("starts from the warm-up of repr_seed0 (epochs 1-2)") == 2  # standard and random
    assert json.loads((shared / "repr_seed0" / "warmup.json").read_text()) == {"epoch": 2, "device": "cpu"}
    assert json.loads((shared / "random_seed0" / "fork.json").read_text())["epoch"] == 2
    # the fork's sessions: the one that trained its first two epochs (repr's), then its own from epoch 2
    sessions = _records_without_timing(shared / "random_seed0" / "sessions.jsonl")
    assert [s["from_epoch"] for s in sessions] == [0, 2]
    assert sessions[0] == _records_without_timing(shared / "repr_seed0" / "sessions.jsonl")[0]
    code, _, err = run_cli([*grid, "--no-share-warmup", "--out", str(alone)], capsys)
    assert code == 0 and "warm-up of" not in err, err
    for name in ("standard_seed0", "random_seed0"):
        assert not (alone / name / "fork.json").exists()
        assert _records_without_timing(shared / name / "metrics.jsonl") == _records_without_timing(
            alone / name / "metrics.jsonl"
        )
        drops = [
            {k: v for k, v in e.items() if k != "seconds"}
            for e in _records_without_timing(alone / name / "events.jsonl")
        ]
        assert drops == [
            {k: v for k, v in e.items() if k != "seconds"}
            for e in _records_without_timing(shared / name / "events.jsonl")
        ]
        a = torch.load(shared / name / "checkpoint.pt", weights_only=True)["model"]
        b = torch.load(alone / name / "checkpoint.pt", weights_only=True)["model"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert (alone / "random_seed0" / "events.jsonl").read_text().count('"drop"') == 1  # the events did happen
    # speed columns count only the epochs a cell trained itself, not those timed in its leader's process
    rows = {r["method"]: r for r in csv.DictReader((shared / "table.csv").open())}
    own = [json.loads(line) for line in (shared / "standard_seed0" / "metrics.jsonl").read_text().splitlines()][2:]
    assert float(rows["standard"]["images_per_s_mean"]) == pytest.approx(sum(m["images_per_s"] for m in own) / 3)
    summary = json.loads((shared / "standard_seed0" / "summary.json").read_text())
    assert summary["images_per_s"] == pytest.approx(sum(m["images_per_s"] for m in own) / 3)  # so does summary.json
    base = [json.loads(line) for line in (shared / "repr_seed0" / "metrics.jsonl").read_text().splitlines()]
    per_epoch = sum(m["seconds"] for m in own) / 3, sum(m["seconds"] for m in base) / 5
    assert float(rows["standard"]["overhead"]) == pytest.approx(100 * (per_epoch[0] / per_epoch[1] - 1))
    # a folder left holding only the lock file of a removed run takes the warm-up again
    victim = shared / "standard_seed0"
    for path in victim.iterdir():
        if path.name != ".lock":
            path.unlink()
    assert [p.name for p in victim.iterdir()] == [".lock"]
    from prunekit.records import RunDir

    with RunDir(victim).training_lock():  # ... but not while a process still holds that lock
        code, _, err = run_cli([*grid, "--out", str(shared)], capsys)
    assert code == 2 and "is being trained by another process" in err and "Traceback" not in err
    code, _, err = run_cli([*grid, "--out", str(shared)], capsys)
    assert code == 0 and "standard_seed0: starts from the warm-up of repr_seed0" in err, err
    assert _records_without_timing(victim / "metrics.jsonl") == _records_without_timing(
        alone / "standard_seed0" / "metrics.jsonl"
    )


def test_a_cell_that_spares_the_first_conv_starts_from_the_warmup_and_matches_one_run_from_scratch(tmp_path, capsys):
    import torch

    grid = [
        "bench",
        "--methods",
        "repr",
        "--ablate",
        "--set",
        "exclude_first=true",
        "--seeds",
        "0",
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "4",
        "--s1",
        "2",
        "--s2",
        "1",
        "--batch-size",
        "64",
        "--momentum",
        "0.9",
        "--jobs",
        "1",
        "--quiet",
    ]
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    code, _, err = run_cli([*grid, "--out", str(shared)], capsys)
    assert code == 0, err
    assert err.count("starts from the warm-up of repr_seed0 (epochs 1-2)") == 1, err
    code, _, err = run_cli([*grid, "--no-share-warmup", "--out", str(alone)], capsys)
    assert code == 0 and "warm-up of" not in err, err
    name = "repr_exclude_first=True_seed0"
    assert _records_without_timing(shared / name / "metrics.jsonl") == _records_without_timing(
        alone / name / "metrics.jsonl"
    )
    events = [json.loads(line) for line in (alone / name / "events.jsonl").read_text().splitlines()]
    assert events and all("features.0" not in e["dropped"] for e in events if e["event"] == "drop")
    a = torch.load(shared / name / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(alone / name / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_no_cell_starts_from_a_warmup_of_other_training_settings_or_past_its_own_first_event(tmp_path, capsys):
    out = tmp_path / "grid"
    code, _, err = run_cli(
        [
            "bench",
            "--methods",
            "repr",
            "--set",
            "schedule.s1=2,1",
            "--set",
            "lr=0.05,0.1",
            "--seeds",
            "0",
            "--dataset",
            "synthetic",
            "--model",
            "c2_8",
            "--epochs",
            "4",
            "--s2",
            "1",
            "--batch-size",
            "64",
            "--quiet",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    # s1=2 keeps a warm-up at epoch 2 and s1=1 at epoch 1; a cell of the other lr may use neither,
    # and an s1=1 cell may not start from an epoch-2 warm-up (its first drop comes before)
    assert "warm-up of" not in err
    assert {
        json.loads((out / n / "warmup.json").read_text())["epoch"]
        for n in ("repr_lr=0.05_schedule.s1=2_seed0", "repr_lr=0.05_schedule.s1=1_seed0")
    } == {2, 1}
    assert not any((p / "fork.json").exists() for p in out.iterdir() if p.is_dir())


def test_a_cell_folder_that_links_to_nothing_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "grid"
    out.mkdir()
    (out / "standard_seed0").symlink_to(tmp_path / "gone", target_is_directory=True)
    code, _, err = run_cli(
        [
            "bench",
            "--methods",
            "standard",
            "--dataset",
            "synthetic",
            "--model",
            "c2_8",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--quiet",
        ],
        capsys,
    )
    assert code == 2 and "which does not exist; fix or remove the link" in err and "Traceback" not in err
    assert (out / "standard_seed0").is_symlink()  # left as it was


def test_unfinished_runs_get_their_own_row_and_are_never_averaged_with_finished_ones(tmp_path, capsys):
    out = tmp_path / "grid"
    argv = [
        "bench",
        "--methods",
        "standard",
        "--seeds",
        "0,1",
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--quiet",
        "--out",
        str(out),
    ]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    unfinished = out / "standard_seed1"
    (unfinished / "summary.json").unlink()
    lines = (unfinished / "metrics.jsonl").read_text().splitlines()
    (unfinished / "metrics.jsonl").write_text(lines[0] + "\n")  # as if stopped after epoch 1
    code, _, err = run_cli([*argv, "--table-only"], capsys)
    assert code == 0, err
    rows = {r["method"]: r for r in csv.DictReader((out / "table.csv").open())}
    done = json.loads((out / "standard_seed0" / "summary.json").read_text())
    assert rows["standard"]["runs"] == "1/2 finished"
    assert float(rows["standard"]["final_test_acc_mean"]) == pytest.approx(done["final_test_acc"])
    assert rows["standard (in progress)"]["runs"] == "1/2 unfinished"
    assert rows["standard (in progress)"]["epochs"] == "1 of 2"
    assert float(rows["standard (in progress)"]["final_test_acc_mean"]) == pytest.approx(
        json.loads(lines[0])["test_acc"]
    )


def record_epochs(folder, done):
    """A run's metrics records for epochs 1..done, as a run under way leaves them."""
    (folder / METRICS).write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(1, done + 1)))


def test_one_cell_at_a_time_resumes_the_cells_under_way_first_and_fresh_ones_keep_grid_order(tmp_path):
    from prunekit import bench as grid_mod

    out = tmp_path / "grid"
    cells = grid_mod.grid(["standard", "repr"], grid_mod.parse_grid_sets([]), [0, 1])
    base = {"dataset": "synthetic", "model": "c2_8", "epochs": 6, "s1": 2, "s2": 1}
    configs = grid_mod.cell_configs(cells, base, out)

    def order():
        leaders = grid_mod.warmup_leaders(out, cells, configs)
        return [cells[i].name for i in grid_mod.start_order(out, cells, configs, leaders)]

    assert order() == ["repr_seed0", "standard_seed0", "repr_seed1", "standard_seed1"]
    # standard_seed0 ran 4 of 6 epochs from scratch; repr_seed1 ran 1, short of its warm-up (epoch 2),
    # which standard_seed1 still waits for
    for name, done in (("standard_seed0", 4), ("repr_seed1", 1)):
        k = [c.name for c in cells].index(name)
        (out / name).mkdir(parents=True)
        (out / name / "config.json").write_text(json.dumps(configs[k].to_dict()))
        record_epochs(out / name, done)
    assert order() == ["standard_seed0", "repr_seed1", "repr_seed0", "standard_seed1"]


def test_only_a_leader_is_restarted_to_share_the_cores_with_the_job_that_waited_for_it(tmp_path, monkeypatch):
    """Cores 6, 3 jobs: A and D start with 3 threads while X waits for A's warm-up; when X starts with 2,
    A (just past its warm-up) restarts with 2, D (mid-epoch, nobody's leader) keeps running."""
    import io

    from rich.console import Console

    import prunekit.workers as workers
    from prunekit.records import RunDir

    monkeypatch.setattr(workers, "POLL_SECONDS", 0)
    monkeypatch.setattr(workers, "available_cores", lambda: 6)
    started, stopped = [], []

    class FakeWorker:  # A keeps a warm-up when first polled; every worker ends at its third poll
        def __init__(self, job):
            self.job, self.polls = job, 0

        def poll(self):
            self.polls += 1
            rd = self.job.run_dir
            if self.job.name == "A" and self.polls == 1:
                rd.file("warmup.pt").write_bytes(b"state")
                rd.file("warmup.json").write_text('{"epoch": 1, "device": "cpu"}')
            if self.polls >= 3:
                rd.file("summary.json").write_text("{}")
                return 0
            return None

    def fake_start(job, threads, location):
        job.threads, job.process = threads, FakeWorker(job)
        started.append((job.name, threads))

    monkeypatch.setattr(workers, "_start", fake_start)
    monkeypatch.setattr(workers, "_stop", lambda processes: stopped.extend(p.job.name for p in processes))

    def job(name, leader=None, ready=lambda: "starts"):
        (tmp_path / name).mkdir()
        return workers.Job(name, RunDir(tmp_path / name), 3, tmp_path / f"{name}.log", ready, leader=leader)

    console = Console(file=io.StringIO())
    failed = workers.run_jobs([job("A"), job("D"), job("X", leader="A")], 3, None, [], console, quiet=True)
    assert failed == []
    assert started == [("A", 3), ("D", 3), ("A", 2), ("X", 2)] and stopped == ["A"]

    def disk_full():
        raise OSError(28, "No space left on device")

    failed = workers.run_jobs([job("E", ready=disk_full), job("F")], 1, 1, [], console, quiet=True)
    assert failed == ["E"] and ("F", 1) in started  # one cell fails with its reason; the grid goes on
    assert "No space left on device" in console.file.getvalue()


def test_a_cell_with_the_fewest_epochs_left_starts_first(tmp_path, monkeypatch):
    """One slot: the cells under way run first, the nearest its end first; the fresh ones keep grid order,
    and a follower waits until its leader has ended (it keeps no warm-up here)."""
    import io

    from rich.console import Console

    import prunekit.workers as workers

    monkeypatch.setattr(workers, "POLL_SECONDS", 0)
    started = []

    class EndsAtOnce:
        def __init__(self, job):
            self.job = job

        def poll(self):
            self.job.run_dir.file("summary.json").write_text("{}")
            return 0

    def fake_start(job, threads, location):
        job.threads, job.process = threads, EndsAtOnce(job)
        started.append(job.name)

    monkeypatch.setattr(workers, "_start", fake_start)

    def job(name, done=0, leader=None):
        (tmp_path / name).mkdir()
        record_epochs(tmp_path / name, done)
        return workers.Job(name, RunDir(tmp_path / name), 4, tmp_path / f"{name}.log", lambda: "starts", leader=leader)

    jobs = [
        job("fresh_a"),
        job("half", done=2),
        job("follower", leader="fresh_b"),
        job("fresh_b"),
        job("nearly", done=3),
    ]
    failed = workers.run_jobs(jobs, 1, 1, [], Console(file=io.StringIO()), quiet=True)
    assert failed == []
    assert started == ["nearly", "half", "fresh_a", "fresh_b", "follower"]


def test_asked_twice_to_stop_the_workers_are_killed_at_once():
    import signal

    import prunekit.workers as workers

    class Worker:  # still finishing its epoch when the second Ctrl-C arrives
        def __init__(self):
            self.signals, self.alive = [], True

        def poll(self):
            return None if self.alive else -signal.SIGKILL

        def send_signal(self, sig):
            self.signals.append(sig)

        def kill(self):
            self.signals.append(signal.SIGKILL)
            self.alive = False

        def wait(self, timeout=None):
            if self.alive:
                raise KeyboardInterrupt
            return -signal.SIGKILL

    a, b = Worker(), Worker()
    with pytest.raises(KeyboardInterrupt):
        workers._stop([a, b])
    assert a.signals == [signal.SIGTERM, signal.SIGKILL] and b.signals == [signal.SIGTERM, signal.SIGKILL]


def _workers_of(out):
    """PIDs of the `prunekit run --resume` processes training cells of grid ``out`` (Linux /proc)."""
    from pathlib import Path

    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--resume" in args and any(str(out).encode() in a for a in args):
            pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.slow
def test_workers_stop_at_their_last_epoch_when_their_bench_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "grid"
    bench = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prunekit",
            "bench",
            "--methods",
            "standard",
            "--seeds",
            "0,1",
            "--dataset",
            "synthetic",
            "--model",
            "c2_8",
            "--epochs",
            "500",
            "--batch-size",
            "64",
            "--quiet",
            "--jobs",
            "2",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = [out / f"standard_seed{s}" / "metrics.jsonl" for s in (0, 1)]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not all(m.exists() and m.read_text().count("\n") >= 1 for m in metrics):
        time.sleep(0.2)
    workers = _workers_of(out)
    bench.kill()  # SIGKILL: the bench cannot stop its workers itself
    bench.wait()
    try:
        assert len(workers) == 2
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _workers_of(out):
            time.sleep(0.2)
        assert not _workers_of(out)
    finally:
        for pid in _workers_of(out):  # a failed test leaves no worker training on
            os.kill(pid, signal.SIGKILL)
    for s in (0, 1):
        assert "interrupted; finished epochs are kept" in (out / f"standard_seed{s}.log").read_text()
        assert not (out / f"standard_seed{s}" / "summary.json").exists()


def test_a_worker_whose_bench_has_ended_does_not_start(tmp_path, capsys, monkeypatch):
    import prunekit.workers as workers

    monkeypatch.setattr(workers.sys, "platform", "elsewhere")  # no parent-death request from the test process
    monkeypatch.setenv(workers.BENCH_PID, "999999999")  # not this process's parent: that bench is gone
    code, _, err = run_cli(
        [
            "run",
            "--method",
            "standard",
            "--dataset",
            "synthetic",
            "--model",
            "c2_8",
            "--epochs",
            "1",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        capsys,
    )
    assert code == 2 and "that started this worker has ended" in err and not any(tmp_path.iterdir())


def test_an_epochs_axis_gives_each_row_its_own_length(tmp_path, capsys):
    out = tmp_path / "g"
    code, _, err = run_cli(
        [
            "bench",
            "--methods",
            "standard",
            "--set",
            "epochs=1,2",
            "--seeds",
            "0",
            "--dataset",
            "synthetic",
            "--model",
            "c2_8",
            "--batch-size",
            "64",
            "--quiet",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    rows = {r["method"]: r["epochs"] for r in csv.DictReader((out / "table.csv").open())}
    assert rows == {"standard_epochs=1": "1 of 1", "standard_epochs=2": "2 of 2"}


def test_a_run_saved_before_a_field_or_option_existed_is_resumed_and_shared_but_a_changed_value_is_refused(
    tmp_path, capsys
):
    out = tmp_path / "grid"
    grid = [
        "bench",
        "--methods",
        "repr",
        "--seeds",
        "0",
        "--dataset",
        "synthetic",
        "--model",
        "c2_8",
        "--epochs",
        "3",
        "--s1",
        "1",
        "--s2",
        "1",
        "--batch-size",
        "64",
        "--quiet",
        "--out",
        str(out),
    ]
    code, _, err = run_cli([*grid, "--set", "next_layer=zero"], capsys)
    assert code == 0, err
    path = out / "repr_next_layer=zero_seed0" / "config.json"
    config = json.loads(path.read_text())
    # as an older prunekit wrote it: without a run field and a ranker option that have defaults today
    del config["eval_batch_size"], config["ranker_args"]["scope"]
    path.write_text(json.dumps(config))
    code, _, err = run_cli([*grid, "--set", "next_layer=zero,random"], capsys)
    assert code == 0, err
    assert "repr_next_layer=zero_seed0: done" in err
    assert "repr_next_layer=random_seed0: starts from the warm-up of repr_next_layer=zero_seed0" in err
    config["ranker_args"]["scope"] = "layer"  # a value that differs from today's default is a different run
    path.write_text(json.dumps(config))
    code, _, err = run_cli([*grid, "--set", "next_layer=zero,random"], capsys)
    assert code == 2 and "holds a run with other settings (ranker_args)" in err
