"""The engine (prunekit.engine): a stopped run resumes to the numbers of one never stopped, and each
training session records the code, libraries and hardware it ran on."""

import json
import os
import platform
import shutil
import subprocess

import pytest
import torch
from helpers import _strip, run_cli

from prunekit.callbacks import Callback
from prunekit.config import resolve
from prunekit.engine import start_run


class StopAfter(Callback):
    def __init__(self, epochs):
        self.epochs = epochs

    def epoch_end(self, run, record):
        if record["epoch"] == self.epochs:
            raise KeyboardInterrupt


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resume_equals_uninterrupted(tmp_path, optimizer):
    values = {
        "method": "repr",
        "dataset": "synthetic",
        "model": "c2_8",
        "epochs": 5,
        "s1": 1,
        "s2": 1,
        "optimizer": optimizer,
        "momentum": 0.0,
        "out": str(tmp_path),
        "batch_size": 64,
    }
    if optimizer == "sgd":
        values["momentum"] = 0.9
    full = start_run(resolve({**values, "name": "full"}))
    cfg = resolve({**values, "name": "cut"})
    with pytest.raises(KeyboardInterrupt):
        start_run(cfg, callbacks=[StopAfter(2)])  # stopped inside the sub-network phase
    assert not (tmp_path / "cut" / "summary.json").exists()
    resumed = start_run(resolve({**values, "name": "cut"}), resume=True)
    read = lambda n: [json.loads(x) for x in (tmp_path / n / "metrics.jsonl").read_text().splitlines()]
    assert _strip(read("full")) == _strip(read("cut"))
    assert resumed["final_test_acc"] == full["final_test_acc"]
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_each_start_and_resume_records_its_code_libraries_and_hardware(tmp_path):
    values = {
        "method": "repr",
        "dataset": "synthetic",
        "model": "c2_8",
        "epochs": 3,
        "s1": 1,
        "s2": 1,
        "out": str(tmp_path),
        "name": "r",
        "batch_size": 64,
    }
    with pytest.raises(KeyboardInterrupt):
        start_run(resolve(values), callbacks=[StopAfter(2)])
    start_run(resolve(values), resume=True)
    sessions = [json.loads(line) for line in (tmp_path / "r" / "sessions.jsonl").read_text().splitlines()]
    assert [s["from_epoch"] for s in sessions] == [0, 2]
    for s in sessions:
        assert s["torch"] == torch.__version__ and s["python"] == platform.python_version()
        assert s["device"] == "cpu" and s["threads"] == torch.get_num_threads() and s["prunekit"]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    head = (
        subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
        if shutil.which("git")
        else None
    )
    if head is not None and head.returncode == 0:  # a checkout: the commit that trained, and whether it was edited
        assert sessions[0]["commit"] == head.stdout.strip() and isinstance(sessions[0]["code_modified"], bool)
    start_run(resolve(values), resume=True)  # finished: nothing trains, no session recorded
    assert len((tmp_path / "r" / "sessions.jsonl").read_text().splitlines()) == 2
    start_run(resolve(values), overwrite=True)  # a replaced run starts a fresh history
    assert len((tmp_path / "r" / "sessions.jsonl").read_text().splitlines()) == 1


def test_a_cut_last_metrics_line_is_ignored_on_resume(tmp_path):
    values = {
        "method": "standard",
        "dataset": "synthetic",
        "model": "c2_8",
        "epochs": 3,
        "out": str(tmp_path),
        "batch_size": 64,
        "name": "r",
    }
    with pytest.raises(KeyboardInterrupt):
        start_run(resolve(values), callbacks=[StopAfter(1)])
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "train_lo')  # killed in the middle of a write
    summary = start_run(resolve(values), resume=True)
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and summary["epochs"] == 3


def test_resume_under_another_setup_warns_and_names_what_changed(tmp_path, capsys):
    values = {
        "method": "standard",
        "dataset": "synthetic",
        "model": "c2_8",
        "epochs": 2,
        "out": str(tmp_path),
        "name": "r",
        "batch_size": 64,
    }
    with pytest.raises(KeyboardInterrupt):
        start_run(resolve(values), callbacks=[StopAfter(1)])
    path = tmp_path / "r" / "sessions.jsonl"
    first = json.loads(path.read_text())
    path.write_text(json.dumps({**first, "torch": "1.0.0", "device": "cuda:0"}) + "\n")
    code, _, err = run_cli(["run", "--resume", str(tmp_path / "r"), "--quiet"], capsys)
    assert code == 0
    assert "warning:" in err and "epochs 1-1 were trained under another setup" in err
    assert f"torch 1.0.0 -> {torch.__version__}" in err and "device cuda:0 -> cpu" in err
    assert [json.loads(x)["torch"] for x in path.read_text().splitlines()] == ["1.0.0", torch.__version__]


class Collect(Callback):
    """Every hook call, in order."""

    def __init__(self):
        self.calls = []

    def run_start(self, run):
        self.calls.append(("run_start", run.epoch))

    def event(self, run, record):
        self.calls.append(("event", record["event"]))

    def epoch_end(self, run, record):
        self.calls.append(("epoch_end", record["epoch"]))

    def run_end(self, run):
        self.calls.append(("run_end", run.epoch))


def test_a_run_writes_nothing_itself_and_tells_its_callbacks_every_epoch_and_event(tmp_path):
    from prunekit.engine import Run

    cfg = resolve({"method": "repr", "dataset": "synthetic", "model": "c2_8", "epochs": 4, "s1": 1, "s2": 1,
                   "batch_size": 64, "out": str(tmp_path), "name": "bare"})  # fmt: skip
    seen = Collect()
    Run(cfg, [seen]).run()
    assert not any(tmp_path.iterdir())  # persistence is the Recorder's, which start_run installs
    # S1 1, S2 1 over 4 epochs: one cycle (drop at 1, restore at 2), the rest of the epochs trained whole
    assert seen.calls == [("run_start", 0), ("epoch_end", 1), ("event", "drop"), ("epoch_end", 2),
                          ("event", "restore"), ("epoch_end", 3), ("epoch_end", 4), ("run_end", 4)]  # fmt: skip
    summary = start_run(resolve({**cfg.to_dict(), "name": "recorded"}))
    recorded = json.loads((tmp_path / "recorded" / "summary.json").read_text())
    assert summary == recorded and summary["events"] == 2 and summary["epochs"] == 4
    assert (tmp_path / "recorded" / "checkpoint.pt").exists()
