"""Run grid cells side by side, each in its own ``prunekit run --resume`` process.

Each job's run directory is made resumable just before its worker starts (its
``ready`` callable), so every worker is a plain resume (which, in a grid's
folder, also keeps the cell's warm-up): a worker that dies or is
stopped leaves a run that the next ``prunekit bench`` picks up at its last
finished epoch. Each worker gets
``threads`` CPU threads and appends its output to ``<grid>/<cell>.log``.

Of the jobs that may start, those under way go first, the fewest epochs left
first (``grid.start_key``); fresh ones keep their order.

A job with a ``leader`` waits until that job has kept its warm-up (or ended), so
that it starts from the warm-up rather than computing the same epochs beside it;
meanwhile the leader gets the cores the waiting job would have had (unless
``threads`` is fixed), and is restarted with its share when the job starts: it
has just kept its warm-up, so it loses at most the start of one epoch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import PrunekitError
from ..records import RunDir
from .grid import start_key

POLL_SECONDS = 2.0
BENCH_PID = "PRUNEKIT_BENCH_PID"  # in a worker's environment: the bench process it works for


@dataclass
class Job:
    name: str
    run_dir: RunDir
    epochs: int
    log: Path
    ready: Callable[[], str]  # makes run_dir resumable; says how the job starts
    process: subprocess.Popen | None = None
    log_offset: int = 0  # where this attempt's output starts in the log
    task: int | None = None
    done_epochs: int = field(default=0)
    leader: str | None = None  # the job whose warm-up this one starts from, once kept
    threads: int = 0


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_threads(jobs: int, cells: int) -> int:
    """Cores shared evenly by the cells that will run at once."""
    return max(1, available_cores() // max(1, min(jobs, cells)))


def _start(job: Job, threads: int, location: list[str]) -> None:
    job.threads = threads
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), BENCH_PID: str(os.getpid())}
    cmd = [sys.executable, "-m", "prunekit", "run", "--resume", str(job.run_dir.path), *location, "--quiet"]
    job.log_offset = job.log.stat().st_size if job.log.exists() else 0
    with open(job.log, "a") as log:
        job.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def stop_with_bench() -> None:
    """Called by `prunekit run` when bench started it: ask Linux for SIGTERM when that bench process dies,
    even by SIGKILL, so that this worker stops at its last finished epoch instead of training on alone,
    holding its run's lock (elsewhere a worker outlives a killed bench). Refuses to start when the bench
    has already ended."""
    pid = os.environ.get(BENCH_PID)
    if not pid:
        return
    if sys.platform == "linux":
        import ctypes

        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
            prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
            prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if str(os.getppid()) != pid:  # it died before the request above could cover it
        raise PrunekitError("the `prunekit bench` that started this worker has ended; rerun it to resume the grid")


def _failure(job: Job, code: int) -> str:
    """Why a worker failed: the last line it logged, or the signal that ended it."""
    with open(job.log, errors="replace") as f:
        f.seek(job.log_offset)
        lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return lines[-1][:200] if lines else "(nothing logged)"


def run_jobs(
    jobs: list[Job], parallel: int, threads: int | None, location: list[str], console: Console, quiet: bool
) -> list[str]:
    """Run every job, at most ``parallel`` at once; returns the names of those that failed.

    ``threads=None`` shares the cores among the jobs running at once (a last job alone
    gets all); ``location`` holds the --device/--data-dir options every worker resumes
    with. Whatever ends this function early (Ctrl-C, an error) first stops every
    worker; each keeps its finished epochs.
    """
    waiting, running, failed = list(jobs), [], []
    leaders = {j.leader for j in jobs}  # jobs others wait for: the only ones given idle cores
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
    )
    try:
        with progress:
            for job in jobs:
                job.done_epochs = job.run_dir.epochs_done()
            total = progress.add_task(
                "grid epochs", total=sum(j.epochs for j in jobs), completed=sum(j.done_epochs for j in jobs), info=""
            )
            while waiting or running:
                while len(running) < parallel:
                    startable = [j for j in waiting if _leader_settled(j, waiting + running)]
                    if not startable:
                        break
                    job = min(startable, key=lambda j: start_key(j.epochs, j.done_epochs))
                    waiting.remove(job)
                    n_threads = threads or default_threads(parallel, len(startable) + len(running))
                    try:
                        how = job.ready()
                        job.done_epochs = job.run_dir.epochs_done()
                    except (PrunekitError, OSError) as exc:  # e.g. a disk that is full: this cell fails, not the grid
                        failed.append(job.name)
                        console.log(f"[red]failed[/red] {job.name}: {exc}")
                        continue
                    for other in running:  # a leader that ran with the cores of a job waiting for it
                        if other.name in leaders and other.threads > n_threads and other.process.poll() is None:
                            _stop([other.process])
                            if other.run_dir.finished:  # it ended on its own meanwhile: the poll below sees it
                                continue
                            _start(other, n_threads, location)
                            console.log(
                                f"{other.name}: resumes after epoch {other.run_dir.epochs_done()} to share the "
                                f"cores with {job.name} (threads {n_threads})"
                            )
                    running.append(job)
                    _start(job, n_threads, location)
                    job.task = progress.add_task(job.name, total=job.epochs, completed=job.done_epochs, info="")
                    console.log(f"{job.name}: {how} (threads {n_threads}, log {job.log})")
                time.sleep(POLL_SECONDS)
                for job in list(running):
                    code = job.process.poll()  # before reading: an ended worker's records are complete
                    job.done_epochs = job.run_dir.epochs_done()
                    progress.update(job.task, completed=job.done_epochs)
                    if code is None:
                        continue
                    running.remove(job)
                    progress.remove_task(job.task)
                    if job.run_dir.finished:  # even if stopped by us while it was ending
                        console.log(f"finished {job.name}")
                    else:
                        failed.append(job.name)
                        console.log(f"[red]failed[/red] {job.name} (exit {code}): {_failure(job, code)}; see {job.log}")
                progress.update(total, completed=sum(j.done_epochs for j in jobs))
    except BaseException:
        _stop([job.process for job in running if job.process is not None])
        raise
    return failed


def _leader_settled(job: Job, active: list[Job]) -> bool:
    """Whether ``job`` may start: it has no leader, or its leader has kept its warm-up or is no longer running."""
    leader = next((j for j in active if j.name == job.leader), None)
    return leader is None or leader.run_dir.warmup_info() is not None


def _stop(processes: list[subprocess.Popen], grace_seconds: float = 60) -> None:
    """Ask workers to stop as Ctrl-C would (they keep their finished epochs); kill what lingers. SIGTERM, which
    `prunekit run` takes as Ctrl-C: a shell's background job ignores SIGINT, and so do the workers it starts.
    A second Ctrl-C (or SIGTERM) while waiting kills them at once (each loses its unfinished epoch)."""
    for proc in processes:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    try:
        for proc in processes:
            try:
                proc.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    except KeyboardInterrupt:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
        for proc in processes:
            proc.wait()
        raise
