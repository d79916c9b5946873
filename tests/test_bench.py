"""`prunekit bench`: a tiny grid on synthetic data, resumable, with tables that match the runs.

Cells in worker processes (--jobs) are tested in test_workers.py, cells sharing a warm-up in test_warmup.py."""

import csv
import json

import pytest
import torch
from helpers import SYNTH, bench_argv, read_jsonl, run_cli, table_rows

from prunekit import bench as grid_mod
from prunekit.records import METRICS, RunDir

GRID = bench_argv("standard,repr", "--seeds", "0,1", "--epochs", "3", "--s1", "1", "--s2", "1")


def test_bench_grid_table_matches_records(tmp_path, capsys):
    out = tmp_path / "grid"
    code, stdout, err = run_cli([*GRID, "--out", str(out)], capsys)  # s1/s2 apply to repr, not to standard
    assert code == 0, err
    rows = table_rows(out)
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
    argv = bench_argv("standard,repr", "--seeds", "0", "--epochs", "3", "--s1", "1", "--s2", "1", out=out)
    code, stdout, err = run_cli([*argv, "--set", "next_layer=zero,random"], capsys)
    assert code == 0, err  # next_layer applies to repr; standard runs once per column as a baseline
    assert (out / "standard_next_layer=random_seed0" / "summary.json").exists()
    assert (
        json.loads((out / "repr_next_layer=random_seed0" / "config.json").read_text())["reinitializer_args"][
            "next_layer"
        ]
        == "random"
    )
    out = tmp_path / "grid2"
    grid = bench_argv("repr,random", "--seeds", "0,1", "--epochs", "3")
    sets = ["--set", "schedule.s1=1", "--set", "schedule.s2=1", "--set", "ranker.scope=global,layer"]
    argv = [*grid, *sets, "--out", str(out)]
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
    reordered = [*grid, "--set", "ranker.scope=global,layer", "--set", "schedule.s2=1", "--set", "schedule.s1=1"]
    reordered += ["--device", "cpu", "--out", str(out)]
    code, stdout, err = run_cli(reordered, capsys)
    assert code == 0 and err.count(": done") == 8, err
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == names
    # a different base configuration into the same folder is refused
    code, _, err = run_cli([*argv[:-2], "--lr", "0.5", "--out", str(out)], capsys)
    assert code == 2 and "other base options" in err


def test_bench_refuses_a_cell_folder_of_other_settings(tmp_path, capsys):
    out = tmp_path / "grid"
    run = ["run", "--method", "standard", *SYNTH, "--epochs", "1", "--lr", "0.5", "--quiet"]
    code, _, err = run_cli([*run, "--out", str(out), "--name", "standard_seed0"], capsys)
    assert code == 0, err
    code, _, err = run_cli(bench_argv("standard", "--epochs", "1", "--quiet", out=out, base=SYNTH), capsys)
    assert code == 2 and "holds a run with other settings (lr)" in err
    assert not (out / "bench.json").exists()  # the refused grid left no record that would claim that run


def test_grid_input_that_would_duplicate_or_mislabel_cells_is_one_line_and_writes_nothing(tmp_path, capsys):
    base = ["bench", *SYNTH, "--epochs", "1", "--quiet"]
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
    argv = bench_argv(
        "repr", "--set", "exclude=[features.0],[features.2]", "--epochs", "3", "--s1", "1", "--s2", "1", out=out
    )
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    for spared, other in (("features.0", "features.2"), ("features.2", "features.0")):
        events = read_jsonl(out / f"repr_exclude={spared}_seed0" / "events.jsonl")
        drops = [e["dropped"] for e in events if e["event"] == "drop"]
        assert drops and all(spared not in d and other in d for d in drops)


def test_a_damaged_summary_is_one_line(tmp_path, capsys):
    out = tmp_path / "grid"
    argv = bench_argv("standard", "--epochs", "1", out=out)
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
    monkeypatch.setattr("prunekit.bench.workers.available_cores", lambda: 1)
    before = torch.get_num_threads()
    try:
        grid = bench_argv("standard", "--seeds", "0", "--epochs", "1", "--quiet", out=tmp_path / "g", base=SYNTH)
        code, _, err = run_cli([*grid, "--threads", "2"], capsys)
        assert code == 0, err
        assert "1 cell(s) x 2 threads = 2 threads on 1 cores" in err
        assert (tmp_path / "g" / "standard_seed0" / "summary.json").exists()
        code, _, err = run_cli([*grid, "--threads", "1"], capsys)
        assert code == 0 and "warning" not in err
    finally:
        torch.set_num_threads(before)


def test_ablate_varies_one_value_at_a_time_and_finished_runs_can_be_moved_or_linked(tmp_path, capsys):
    out = tmp_path / "ablations"
    common = ["--epochs", "3", "--s1", "1", "--s2", "1"]
    argv = bench_argv("repr", "--ablate", "--set", "next_layer=random", "--set", "reinitializer=default,keep", *common)
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
        own = [m["seconds"] for m in read_jsonl(out / name / "metrics.jsonl")][start:]
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
    code, _, err = run_cli(bench_argv("repr", "--set", "ranker=orthogonality", *common, out=other), capsys)
    assert code == 0 and err.count(": done") == 1, err
    row = next(csv.DictReader((other / "table.csv").open()))
    summary = json.loads((moved / "repr_seed0" / "summary.json").read_text())
    assert float(row["final_test_acc_mean"]) == pytest.approx(summary["final_test_acc"])


def test_a_cell_folder_that_links_to_nothing_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "grid"
    out.mkdir()
    (out / "standard_seed0").symlink_to(tmp_path / "gone", target_is_directory=True)
    code, _, err = run_cli(bench_argv("standard", "--epochs", "1", "--quiet", out=out, base=SYNTH), capsys)
    assert code == 2 and "which does not exist; fix or remove the link" in err and "Traceback" not in err
    assert (out / "standard_seed0").is_symlink()  # left as it was


def test_unfinished_runs_get_their_own_row_and_are_never_averaged_with_finished_ones(tmp_path, capsys):
    out = tmp_path / "grid"
    argv = bench_argv("standard", "--seeds", "0,1", "--epochs", "2", out=out)
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    unfinished = out / "standard_seed1"
    (unfinished / "summary.json").unlink()
    lines = (unfinished / "metrics.jsonl").read_text().splitlines()
    (unfinished / "metrics.jsonl").write_text(lines[0] + "\n")  # as if stopped after epoch 1
    code, _, err = run_cli([*argv, "--table-only"], capsys)
    assert code == 0, err
    rows = table_rows(out)
    done = json.loads((out / "standard_seed0" / "summary.json").read_text())
    assert rows["standard"]["runs"] == "1/2 finished"
    assert float(rows["standard"]["final_test_acc_mean"]) == pytest.approx(done["final_test_acc"])
    assert rows["standard (in progress)"]["runs"] == "1/2 unfinished"
    assert rows["standard (in progress)"]["epochs"] == "1 of 2"
    assert float(rows["standard (in progress)"]["final_test_acc_mean"]) == pytest.approx(
        json.loads(lines[0])["test_acc"]
    )


def test_an_epochs_axis_gives_each_row_its_own_length(tmp_path, capsys):
    out = tmp_path / "g"
    code, _, err = run_cli(bench_argv("standard", "--set", "epochs=1,2", "--seeds", "0", out=out), capsys)
    assert code == 0, err
    rows = {r["method"]: r["epochs"] for r in csv.DictReader((out / "table.csv").open())}
    assert rows == {"standard_epochs=1": "1 of 1", "standard_epochs=2": "2 of 2"}


def test_a_run_saved_before_a_field_or_option_existed_is_resumed_and_shared_but_a_changed_value_is_refused(
    tmp_path, capsys
):
    out = tmp_path / "grid"
    grid = bench_argv("repr", "--seeds", "0", "--epochs", "3", "--s1", "1", "--s2", "1", out=out)
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
