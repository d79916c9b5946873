"""The command line: runs, records, resume, and one clear line for bad input.

Config resolution is tested in test_config.py, `prunekit list` and plugins in test_registry.py, resuming
in the engine in test_engine.py."""

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from helpers import FAST, SYNTH, _strip, read_jsonl, run_cli

import prunekit.data as data
from prunekit import records, registry
from prunekit.cli import run as run_command
from prunekit.errors import PrunekitError
from prunekit.interfaces import Ranker
from prunekit.records import RunDir, atomic_save, atomic_write_text


def test_run_writes_a_complete_record(tmp_path, capsys):
    argv = ["run", "--method", "repr", "--epochs", "4", "--s1", "1", "--s2", "1", "--out", str(tmp_path), "--name", "r"]
    code, out, err = run_cli([*argv, *FAST], capsys)
    assert code == 0, err
    run = tmp_path / "r"
    config = json.loads((run / "config.json").read_text())
    assert config["ranker"] == "orthogonality" and config["schedule_args"]["s1"] == 1
    assert config["ranker_args"]["scope"] == "global"  # every default written out
    metrics = read_jsonl(run / "metrics.jsonl")
    assert [m["epoch"] for m in metrics] == [1, 2, 3, 4]
    assert {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "images_per_s", "dropped"} <= set(
        metrics[0]
    )
    assert metrics[1]["dropped"]["features.0"] + metrics[1]["dropped"]["features.2"] > 0  # held in epoch 2
    assert all(v == 0 for v in metrics[2]["dropped"].values())  # restored at the start of epoch 3
    events = read_jsonl(run / "events.jsonl")
    assert [(e["epoch"], e["event"]) for e in events] == [
        (1, "drop"),
        (2, "restore"),
    ]
    drop = events[0]  # the ranker's scores are recorded: the dropped filters are the lowest (global scope)
    assert {g: len(v) for g, v in drop["scores"].items()} == drop["sizes"]
    dropped = [v for g, v in drop["scores"].items() for i, v in enumerate(v) if i in drop["dropped"][g]]
    kept = [v for g, v in drop["scores"].items() for i, v in enumerate(v) if i not in drop["dropped"][g]]
    assert len(dropped) == round(0.3 * 16) and max(dropped) <= min(kept)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["final_test_acc"] == metrics[-1]["test_acc"] and summary["events"] == 2
    assert summary["data_source"] == "synthetic seed=0"  # where the images came from
    assert "final_test_acc" in out


def test_resume_via_cli_and_refusals(tmp_path, capsys):
    base = ["run", "--method", "standard", "--epochs", "2", "--out", str(tmp_path), "--name", "s", *FAST]
    assert run_cli(base, capsys)[0] == 0
    code, _, err = run_cli(base, capsys)
    assert code == 2 and "already exists" in err and "--resume" in err
    code, _, err = run_cli(["run", "--resume", str(tmp_path / "s")], capsys)
    assert code == 2 and "already finished" in err
    code, _, err = run_cli(["run", "--resume", str(tmp_path / "s"), "--lr", "0.1"], capsys)
    assert code == 2 and "only --device and --data-dir may change" in err
    (tmp_path / "s" / "summary.json").unlink()
    (tmp_path / "s" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    code, _, err = run_cli(["run", "--resume", str(tmp_path / "s")], capsys)
    assert code == 2 and "damaged" in err
    code, _, err = run_cli(["run", "--resume", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "not a prunekit run" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--method", "nope"],
            "unknown method 'nope'; valid: magnitude, prune-fpgm, prune-l1, prune-l2, prune-orthogonality, prune-random, prune-taylor, random, repr, repr-author",
        ),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--dataset", "nope"], "unknown dataset 'nope'; valid: cifar10, cifar100, folder:*, synthetic"),
        (
            ["--method", "repr", "--ranker", "nope"],
            "unknown ranker 'nope'; valid: activation, apoz, fpgm, gradient, hessian, l1, l2, oracle, orthogonality",
        ),
        (["--method", "repr", "--prune-ratio", "1.2"], "prune_ratio must be in (0, 1)"),
        (["--method", "repr", "--prune-ratio", "0"], "prune_ratio must be in (0, 1)"),
        (["--method", "repr", "--s1", "0"], "s1 must be a positive"),
        (["--method", "repr", "--s2", "-3"], "s2 must be a positive"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--method", "repr", "--epochs", "20"], "leaves no room for one RePr cycle"),
        (["--set", "bogus=1"], "no component of this run takes option 'bogus'"),
        (["--set", "next_layer"], "--set takes key=value, got 'next_layer'; e.g. --set next_layer=random"),
        (["--method", "repr", "--set", "next-layer=nope"], "next_layer must be"),
        (["--method", "repr", "--set", "ranker.bogus=1"], "does not take option(s) bogus; valid:"),
        (
            ["--method", "repr", "--ranker", "taylor", "--set", "ranker.batches=0"],
            "batches must be a positive integer, got 0",
        ),
        (
            ["--method", "repr", "--ranker", "hessian", "--set", "ranker.samples=1.5"],
            "samples must be a positive integer",
        ),
        (["--lr", "-1"], "lr must be a positive number"),
    ],
)
def test_bad_input_gives_one_clear_line(tmp_path, capsys, argv, message):
    code, out, err = run_cli(["run", *argv, "--out", str(tmp_path)], capsys)
    assert code == 2
    assert message in err.replace("\n", " "), err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    assert not any(tmp_path.iterdir())  # nothing written


def test_missing_data_offline_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    def offline(name, root, download):
        raise RuntimeError(
            "Dataset not found or corrupted."
            if not download
            else "<urlopen error [Errno -3] Temporary failure in name resolution>"
        )

    monkeypatch.setattr(data, "_torchvision_cifar", offline)
    code, _, err = run_cli(
        ["run", "--dataset", "cifar10", "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "runs")], capsys
    )
    assert code == 2 and "prunekit data import" in err and "could not be downloaded" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_data_folder_that_is_a_file_is_one_line_naming_where_it_came_from(tmp_path, capsys, monkeypatch):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    images = tmp_path / "images"
    for split in ("train", "test"):
        (images / split / "cat").mkdir(parents=True)
    cases = [
        (["run", "--dataset", "cifar10", "--data-dir", str(taken), "--out", str(tmp_path / "runs")], {}, "--data-dir"),
        (["data", "import", str(images), "--data-dir", str(taken)], {}, "--data-dir"),
        (
            ["run", "--dataset", "cifar10", "--out", str(tmp_path / "runs")],
            {"PRUNEKIT_DATA": str(taken)},
            "$PRUNEKIT_DATA",
        ),
    ]
    for argv, env, source in cases:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and f"{source} names {taken}, which is a file, not a folder" in err.replace("\n", " "), err
        assert "Traceback" not in err and taken.read_text() == "mine"
    assert not (tmp_path / "runs").exists()


def test_a_run_being_trained_by_another_process_is_refused_untouched(tmp_path, capsys):
    base = ["--method", "standard", *SYNTH, "--epochs", "1", "--out", str(tmp_path), "--name", "busy", "--quiet"]
    code, _, err = run_cli(["run", *base], capsys)
    assert code == 0, err
    run = RunDir(tmp_path / "busy")
    (run.path / "summary.json").unlink()
    before = {p.name: p.read_bytes() for p in run.path.iterdir()}
    with run.training_lock():  # as a process training it would hold
        code, _, err = run_cli(["run", "--resume", str(run.path), "--quiet"], capsys)
        assert code == 2 and "is being trained by another process" in err and "Traceback" not in err
        code, _, err = run_cli(["run", *base, "--overwrite"], capsys)
        assert code == 2 and "is being trained by another process" in err
    assert {p.name: p.read_bytes() for p in run.path.iterdir()} == before  # nothing touched
    code, _, err = run_cli(["run", "--resume", str(run.path), "--quiet"], capsys)  # free again
    assert code == 0, err


@pytest.mark.parametrize("umask", [0o022, 0o002], ids=["umask022", "umask002"])
def test_records_get_the_mode_of_any_new_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text("{}\n", tmp_path / "config.json")
        atomic_save({"x": torch.zeros(1)}, tmp_path / "checkpoint.pt")
    finally:
        os.umask(old)
    for name in ("config.json", "checkpoint.pt"):  # readable by the group and others, as open() would make it
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_file_where_a_run_folder_must_go_is_one_line_and_stays(tmp_path, capsys):
    (tmp_path / "taken").write_text("mine")
    cases = [
        (["run", "--out", str(tmp_path), "--name", "taken", "--epochs", "1", *FAST], "is a file, not a run directory"),
        (
            ["run", "--out", str(tmp_path / "taken"), "--epochs", "1", *FAST],
            "a file stands where prunekit needs a folder",
        ),
        (
            ["bench", "--methods", "standard", "--out", str(tmp_path / "taken"), "--epochs", "1", *FAST],
            "a file stands where prunekit needs a folder",
        ),
    ]
    for argv, message in cases:
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and message in err.replace("\n", " ") and "Traceback" not in err, (argv, err)
        assert (tmp_path / "taken").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_a_write_that_fails_midway_keeps_the_last_checkpoint_and_whole_records(tmp_path, capsys, monkeypatch):
    """Disk full while writing epoch 3's checkpoint, and then while appending a record: one line, exit 2,
    the epoch-2 checkpoint and every record line intact, no temp file left; the run then resumes to the
    same numbers as one never interrupted."""
    argv = ["run", "--method", "repr", "--epochs", "4", "--s1", "1", "--s2", "1", *FAST, "--out", str(tmp_path)]
    assert run_cli(argv + ["--name", "full"], capsys)[0] == 0
    real_save, saves = torch.save, []

    def save_then_fail(obj, path, *a, **kw):
        if ".checkpoint.pt." in str(path):
            saves.append(path)
        if len(saves) == 3 and ".checkpoint.pt." in str(path):  # epoch 3's: half a file, then the disk is full
            Path(path).write_bytes(b"\x80\x02half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, path, *a, **kw)

    monkeypatch.setattr(records.torch, "save", save_then_fail)
    code, out, err = run_cli(argv + ["--name", "cut"], capsys)
    monkeypatch.undo()
    run = tmp_path / "cut"
    text = " ".join((out + err).split())
    assert code == 2 and "No space left on device" in text and "Traceback" not in text
    assert f"cannot write {run / 'checkpoint.pt'}" in text
    assert torch.load(run / "checkpoint.pt", weights_only=False)["epoch"] == 2
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]  # epoch 3's line came before its checkpoint

    def half_then_fail(path, line):
        with open(path, "a") as f:
            f.write(line[: len(line) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(records, "_append_line", half_then_fail)
    with pytest.raises(PrunekitError, match="cannot write .*events.jsonl"):
        records.RunDir(run).append("events.jsonl", {"epoch": 9, "event": "drop"})
    monkeypatch.undo()
    assert all(json.loads(x) for x in (run / "events.jsonl").read_text().splitlines())  # cut back to whole lines

    assert run_cli(["run", "--resume", str(run), "--quiet"], capsys)[0] == 0
    read = lambda n: read_jsonl(tmp_path / n / "metrics.jsonl")
    assert _strip(read("full")) == _strip(read("cut"))


def test_a_components_own_options_are_command_line_options(tmp_path, capsys, monkeypatch):
    """A ranker registered by a third party brings its __init__ options to `run` (typed, with its help),
    beside RePr's, and a value given there reaches that ranker."""

    class Sharp(Ranker):
        option_help = {"sharpness": "How sharp."}

        def __init__(self, sharpness: float = 1.0, **base):
            super().__init__(**base)
            self.sharpness = sharpness

        def scores(self, ctx):
            return [torch.zeros(g.size) for g in ctx.groups]

    reg = registry.REGISTRY
    reg.discover()
    monkeypatch.setitem(
        reg.entries["rankers"], "sharp", registry._ObjectEntry("sharp", "rankers", "test:Sharp", "test", obj=Sharp)
    )
    monkeypatch.setattr(run_command, "params", list(run_command.params))
    monkeypatch.setattr(run_command, "_components_added", False, raising=False)
    code, out, _ = run_cli(["run", "--help"], capsys)
    help_text = " ".join(out.split())
    assert code == 0 and "--sharpness FLOAT How sharp. [sharp (ranker)]" in help_text and "--s1 INTEGER" in help_text
    argv = ["run", "--method", "repr", "--ranker", "sharp", "--sharpness", "2.5", "--out", str(tmp_path), "--name", "s"]
    code, out, err = run_cli([*argv, "--epochs", "3", "--s1", "1", "--s2", "1", *FAST], capsys)
    assert code == 0, out + err
    assert json.loads((tmp_path / "s" / "config.json").read_text())["ranker_args"]["sharpness"] == 2.5
    code, _, err = run_cli(["run", "--sharpness", "blunt"], capsys)
    assert code != 0 and "blunt" in err


def test_an_error_that_holds_square_brackets_is_printed_as_written(tmp_path, capsys):
    """Messages carry paths and library errors (gloo's start with "[/path/pair.cc:561]"): no markup."""
    odd = tmp_path / "[/not-markup]"
    code, out, err = run_cli(["run", "--resume", str(odd)], capsys)
    assert code == 2 and "[/not-markup]" in " ".join(err.split()) and "Traceback" not in out + err
