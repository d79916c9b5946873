"""`prunekit bench` cells in worker processes (prunekit.bench.workers): --jobs, the order cells start in,
a leader restarted to share the cores, and stopping them (SIGTERM, a second Ctrl-C, a killed bench)."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import SYNTH, _records_without_timing, bench_argv, run_cli, table_rows
from rich.console import Console

import prunekit.bench.workers as workers
from prunekit import bench as grid_mod
from prunekit.bench.workers import available_cores
from prunekit.records import METRICS, RunDir


def test_bench_jobs_runs_cells_in_worker_processes_and_reports_a_failed_cell(tmp_path, capsys):
    out = tmp_path / "grid"
    grid = bench_argv("standard,repr", "--seeds", "0", "--epochs", "3", "--s1", "1", "--s2", "1", out=out)
    argv = [*grid, "--jobs", "2", "--threads", "1"]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    rows = table_rows(out)
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
    monkeypatch.setattr(workers, "POLL_SECONDS", 0.1)  # sees the warm-up while the leader still has epochs to go
    out = tmp_path / "grid"
    grid = bench_argv("standard,repr", "--seeds", "0", "--epochs", "12", "--s1", "2", "--s2", "1", out=out)
    argv = [*grid, "--jobs", "2", "--device", "cpu"]
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


@pytest.mark.slow
def test_sigterm_stops_every_worker_and_keeps_their_finished_epochs(tmp_path, capsys, monkeypatch):
    """SIGTERM to `bench --jobs` (like Ctrl-C) ends all its workers; their finished epochs stay on disk."""
    out = tmp_path / "grid"
    argv = bench_argv("standard", "--seeds", "0,1", "--epochs", "500", "--jobs", "2", "--threads", "1", out=out)
    started = []
    real_popen = subprocess.Popen

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


def record_epochs(folder, done):
    """A run's metrics records for epochs 1..done, as a run under way leaves them."""
    (folder / METRICS).write_text("".join(json.dumps({"epoch": e}) + "\n" for e in range(1, done + 1)))


def test_one_cell_at_a_time_resumes_the_cells_under_way_first_and_fresh_ones_keep_grid_order(tmp_path):
    out = tmp_path / "grid"
    cells = grid_mod.plan(["standard", "repr"], grid_mod.parse_grid_sets([]), [0, 1])
    base = {"dataset": "synthetic", "model": "c2_8", "epochs": 6, "s1": 2, "s2": 1}
    configs = grid_mod.cell_configs(cells, base, out)

    def order():
        leaders = grid_mod.Grid(out).warmup_leaders(cells, configs)
        return [cells[i].name for i in grid_mod.Grid(out).start_order(cells, configs, leaders)]

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
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--resume" in args and any(str(out).encode() in a for a in args):
            pids.append(int(proc.name))
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.slow
def test_workers_stop_at_their_last_epoch_when_their_bench_is_killed(tmp_path):
    out = tmp_path / "grid"
    argv = bench_argv("standard", "--seeds", "0,1", "--epochs", "500", "--jobs", "2", "--threads", "1", out=out)
    bench = subprocess.Popen(
        [sys.executable, "-m", "prunekit", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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
    monkeypatch.setattr(workers.sys, "platform", "elsewhere")  # no parent-death request from the test process
    monkeypatch.setenv(workers.BENCH_PID, "999999999")  # not this process's parent: that bench is gone
    argv = ["run", "--method", "standard", *SYNTH, "--epochs", "1", "--out", str(tmp_path), "--quiet"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "that started this worker has ended" in err and not any(tmp_path.iterdir())
