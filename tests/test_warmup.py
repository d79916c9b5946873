"""Cells of a grid sharing a warm-up (prunekit.bench.warmup): which sibling leads, a cell started from its
warm-up, and the same numbers as a run from scratch."""

import json

import pytest
import torch
from helpers import FAST, SYNTH, _records_without_timing, bench_argv, read_jsonl, run_cli, table_rows

from prunekit import bench as grid_mod
from prunekit.bench.grid import leaders_first
from prunekit.records import RunDir


def test_warmup_leaders_pick_a_sibling_that_will_keep_a_usable_warmup_and_leaders_run_first(tmp_path, capsys):
    def plan(methods, sets=()):
        cells = grid_mod.plan(methods, grid_mod.parse_grid_sets(list(sets)), [0])
        base = {"dataset": "synthetic", "model": "c2_8", "epochs": 6, "s1": 2, "s2": 1}
        configs = grid_mod.cell_configs(cells, base, tmp_path / "grid")
        leaders = grid_mod.Grid(tmp_path / "grid").warmup_leaders(cells, configs)
        return cells, leaders, [cells[i].name for i in leaders_first(cells, leaders)]

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
    argv = bench_argv("repr", "--seeds", "0", "--epochs", "6", "--s1", "2", "--s2", "1", "--quiet", base=SYNTH)
    code, _, err = run_cli([*argv, "--out", str(tmp_path / "grid")], capsys)
    assert code == 0, err
    for name in ("warmup.pt", "warmup.json"):
        (tmp_path / "grid" / "repr_seed0" / name).unlink()
    _, leaders, _ = plan(["standard", "repr"])
    assert leaders == {}


def test_a_cell_started_from_a_siblings_warmup_matches_one_run_from_scratch(tmp_path, capsys):
    grid = bench_argv(
        "repr,standard,random", "--seeds", "0", "--epochs", "5", "--s1", "2", "--s2", "1", "--momentum", "0.9"
    )
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
    rows = table_rows(shared)
    own = read_jsonl(shared / "standard_seed0" / "metrics.jsonl")[2:]
    assert float(rows["standard"]["images_per_s_mean"]) == pytest.approx(sum(m["images_per_s"] for m in own) / 3)
    summary = json.loads((shared / "standard_seed0" / "summary.json").read_text())
    assert summary["images_per_s"] == pytest.approx(sum(m["images_per_s"] for m in own) / 3)  # so does summary.json
    base = read_jsonl(shared / "repr_seed0" / "metrics.jsonl")
    per_epoch = sum(m["seconds"] for m in own) / 3, sum(m["seconds"] for m in base) / 5
    assert float(rows["standard"]["overhead"]) == pytest.approx(100 * (per_epoch[0] / per_epoch[1] - 1))
    # a folder left holding only the lock file of a removed run takes the warm-up again
    victim = shared / "standard_seed0"
    for path in victim.iterdir():
        if path.name != ".lock":
            path.unlink()
    assert [p.name for p in victim.iterdir()] == [".lock"]

    with RunDir(victim).training_lock():  # ... but not while a process still holds that lock
        code, _, err = run_cli([*grid, "--out", str(shared)], capsys)
    assert code == 2 and "is being trained by another process" in err and "Traceback" not in err
    code, _, err = run_cli([*grid, "--out", str(shared)], capsys)
    assert code == 0 and "standard_seed0: starts from the warm-up of repr_seed0" in err, err
    assert _records_without_timing(victim / "metrics.jsonl") == _records_without_timing(
        alone / "standard_seed0" / "metrics.jsonl"
    )


def test_a_cell_that_spares_the_first_conv_starts_from_the_warmup_and_matches_one_run_from_scratch(tmp_path, capsys):
    grid = bench_argv("repr", "--ablate", "--set", "exclude_first=true", "--seeds", "0", "--jobs", "1")
    grid += ["--epochs", "4", "--s1", "2", "--s2", "1", "--momentum", "0.9"]
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
    events = read_jsonl(alone / name / "events.jsonl")
    assert events and all("features.0" not in e["dropped"] for e in events if e["event"] == "drop")
    a = torch.load(shared / name / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(alone / name / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_no_cell_starts_from_a_warmup_of_other_training_settings_or_past_its_own_first_event(tmp_path, capsys):
    out = tmp_path / "grid"
    axes = ["--set", "schedule.s1=2,1", "--set", "lr=0.05,0.1"]
    code, _, err = run_cli(bench_argv("repr", *axes, "--seeds", "0", "--epochs", "4", "--s2", "1", out=out), capsys)
    assert code == 0, err
    # s1=2 keeps a warm-up at epoch 2 and s1=1 at epoch 1; a cell of the other lr may use neither,
    # and an s1=1 cell may not start from an epoch-2 warm-up (its first drop comes before)
    assert "warm-up of" not in err
    assert {
        json.loads((out / n / "warmup.json").read_text())["epoch"]
        for n in ("repr_lr=0.05_schedule.s1=2_seed0", "repr_lr=0.05_schedule.s1=1_seed0")
    } == {2, 1}
    assert not any((p / "fork.json").exists() for p in out.iterdir() if p.is_dir())


def test_only_a_grid_cell_keeps_its_warmup(tmp_path, capsys):
    args = FAST + ["--method", "repr", "--epochs", "4", "--s1", "2", "--s2", "1", "--out", str(tmp_path)]
    code, _, err = run_cli(["run", *args, "--name", "alone"], capsys)
    assert code == 0, err
    assert not (tmp_path / "alone" / "warmup.pt").exists()  # no grid to share it with
    bench = [a for a in args if a not in ("--method", "repr")]
    code, _, err = run_cli(["bench", "--methods", "repr", *bench[:-1], str(tmp_path / "grid")], capsys)
    assert code == 0, err
    kept = torch.load(tmp_path / "grid" / "repr_seed0" / "warmup.pt", weights_only=True)
    assert kept["epoch"] == 2  # the state at the first drop (start of epoch 3)
    alone = torch.load(tmp_path / "alone" / "checkpoint.pt", weights_only=True)
    assert alone["epoch"] == 4


def test_a_cell_stopped_between_its_checkpoint_and_its_warmup_keeps_the_warmup_when_resumed_by_hand(tmp_path, capsys):
    from prunekit.callbacks import Callback
    from prunekit.config import resolve
    from prunekit.engine import start_run

    class StopAtFirstEvent(Callback):  # after the Recorder's checkpoint, before any warm-up keeper
        def epoch_end(self, run, record):
            if run.epoch == run.first_event:
                raise KeyboardInterrupt

    grid = tmp_path / "grid"
    code, _, err = run_cli(bench_argv("repr", "--epochs", "4", "--s1", "2", "--s2", "1", out=grid), capsys)
    assert code == 0, err
    cfg = resolve({"dataset": "synthetic", "model": "c2_8", "batch_size": 64, "method": "repr", "epochs": 4,
                   "s1": 2, "s2": 1, "out": str(grid), "name": "stopped"})  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        start_run(cfg, callbacks=[StopAtFirstEvent()])
    stopped = RunDir(grid / "stopped")
    assert stopped.warmup_info() is None and stopped.epochs_done() == 2
    checkpoint = stopped.load_checkpoint()
    code, _, err = run_cli(["run", "--resume", str(stopped.path), "--quiet"], capsys)
    assert code == 0, err
    assert stopped.warmup_info() == {"epoch": 2, "device": "cpu"}
    kept = torch.load(stopped.file("warmup.pt"), weights_only=True)
    assert all(torch.equal(kept["model"][k], v) for k, v in checkpoint["model"].items())
    sibling = torch.load(grid / "repr_seed0" / "warmup.pt", weights_only=True)  # kept by bench: the same state
    assert all(torch.equal(sibling["model"][k], v) for k, v in kept["model"].items())


def test_a_resume_without_a_checkpoint_continues_from_the_kept_warmup_or_refuses_and_changes_nothing(tmp_path, capsys):
    grid = tmp_path / "grid"
    code, _, err = run_cli(bench_argv("repr", "--epochs", "4", "--s1", "2", "--s2", "1", out=grid), capsys)
    assert code == 0, err
    rd = RunDir(grid / "repr_seed0")
    full = {n: _records_without_timing(rd.file(n)) for n in ("metrics.jsonl", "events.jsonl")}
    for name in ("summary.json", "checkpoint.pt"):  # checkpoints are not kept in git; the warm-up may be
        rd.file(name).unlink()
    code, _, err = run_cli(["run", "--resume", str(rd.path), "--quiet"], capsys)
    assert code == 0, err
    assert "no checkpoint.pt" in err and "continues from its kept warm-up after epoch 2" in err
    assert {n: _records_without_timing(rd.file(n)) for n in full} == full  # epochs 3-4 trained again, the same
    assert [r["from_epoch"] for r in read_jsonl(rd.file("sessions.jsonl"))] == [0, 2]  # the first kept epochs 1-2

    for name in ("summary.json", "checkpoint.pt", "warmup.pt"):
        rd.file(name).unlink()
    moved = tmp_path / "moved"  # e.g. a clone elsewhere: its config.json still names the grid's folder
    rd.path.rename(moved)
    rd = RunDir(moved)
    before = {p.name: p.read_bytes() for p in rd.path.iterdir()}
    code, _, err = run_cli(["run", "--resume", str(rd.path), "--quiet"], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "records 4 epoch(s) but has no checkpoint.pt or warmup.pt" in err and "nothing was changed" in err
    assert {p.name: p.read_bytes() for p in rd.path.iterdir()} == before
    remedy = err[err.index("`prunekit ") + len("`prunekit ") : err.rindex("`")].split()
    code, _, err = run_cli([*remedy, "--quiet"], capsys)
    assert code == 0, err  # the remedy the line names trains the moved folder again, from epoch 1
    assert {n: _records_without_timing(rd.file(n)) for n in full} == full
    assert not (grid / "repr_seed0").exists()


def test_a_grid_cell_whose_records_have_no_checkpoint_is_set_aside_and_run_again(tmp_path, capsys):
    grid = tmp_path / "grid"
    argv = bench_argv("repr,standard", "--epochs", "4", "--s1", "2", "--s2", "1", out=grid)
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    rd = RunDir(grid / "standard_seed0")  # started from repr's warm-up; keeps none of its own
    leader = RunDir(grid / "repr_seed0")  # keeps its warm-up
    full = {d.path.name: _records_without_timing(d.file("metrics.jsonl")) for d in (rd, leader)}
    for d in (rd, leader):
        for name in ("summary.json", "checkpoint.pt"):
            d.file(name).unlink()
    old = rd.file("metrics.jsonl").read_bytes()
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    said = " ".join(err.split())  # the console wraps long lines
    assert "repr_seed0: resumes from its kept warm-up after epoch 2 (no checkpoint.pt)" in said
    assert "standard_seed0: its 4 recorded epochs had no checkpoint.pt (moved to" in said
    assert "starts from the warm-up of repr_seed0 (epochs 1-2)" in said
    assert {d.path.name: _records_without_timing(d.file("metrics.jsonl")) for d in (rd, leader)} == full
    assert rd.finished and leader.finished
    (aside,) = (grid / ".set-aside").iterdir()
    assert aside.name.startswith("standard_seed0-") and (aside / "metrics.jsonl").read_bytes() == old
    assert set(table_rows(grid)) == {"repr", "standard"}
