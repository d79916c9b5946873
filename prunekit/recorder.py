"""The run's record keeper: a ``Run`` callback that writes everything a run leaves in its folder.

Per event a line of ``events.jsonl``; per epoch a line of ``metrics.jsonl`` and the checkpoint; per
start or resume a line of ``sessions.jsonl``; at the end ``summary.json``. A resumed run first drops
the records of the epoch it lost, so its files read as those of a run never stopped.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .callbacks import Callback
from .environment import changes, describe
from .records import EVENTS, FORK, METRICS, SESSIONS, RunDir

if TYPE_CHECKING:
    from .engine import Run


class Recorder(Callback):
    def __init__(self, run_dir: RunDir, resume: bool = False):
        self.dir = run_dir
        self.resume = resume
        self.summary: dict = {}  # written at the run's end

    def run_start(self, run: Run) -> None:
        if self.resume:  # the records of the epochs the stop (or a lost checkpoint) cut short go
            done = run.epoch
            self.dir.truncate_jsonl(METRICS, lambda r: r["epoch"] <= done)
            self._name_own_groups_in_warmup_records(run)
            self.dir.truncate_jsonl(EVENTS, lambda r: r["epoch"] < done)
            self.dir.truncate_jsonl(SESSIONS, lambda r: r["from_epoch"] < done)  # those that kept no epoch
        if run.epoch < run.cfg.epochs:  # a finished run resumed trains nothing: no session to record
            self._record_session(run)

    def event(self, run: Run, record: dict) -> None:
        self.dir.append(EVENTS, record)

    def epoch_end(self, run: Run, record: dict) -> None:
        self.dir.append(METRICS, record)
        self.dir.save_checkpoint(run.state_dict())

    def run_end(self, run: Run) -> None:
        self.summary = summarize(self.dir, run.facts())
        self.dir.write_summary(self.summary)

    def _record_session(self, run: Run) -> None:
        """Append this session to sessions.jsonl; warn when it differs from the one that trained the epochs
        before it (the run's numbers then come from two setups)."""
        now = {"from_epoch": run.epoch, **describe(run.device), "world_size": run.world.size}
        earlier = self.dir.read_jsonl(SESSIONS) if run.epoch > 0 else []
        if earlier and (diffs := changes(earlier[-1], now)):
            trained = f"epochs {earlier[-1]['from_epoch'] + 1}-{run.epoch}"
            run.warn(
                f"{trained} were trained under another setup ({'; '.join(diffs)}); "
                f"the run's numbers mix both (each session is in {SESSIONS})"
            )
        self.dir.append(SESSIONS, now)

    def _name_own_groups_in_warmup_records(self, run: Run) -> None:
        """A run started from another's warm-up copied its records, whose per-group fractions (all zero:
        nothing is dropped before the first event) name the source's groups; a run that spares a group
        has fewer."""
        fork = self.dir.file(FORK)
        if not fork.exists():
            return
        until = int(json.loads(fork.read_text())["epoch"])
        own = {g.name: 0.0 for g in run.groups}
        rows = self.dir.read_jsonl(METRICS)
        if any(r["epoch"] <= until and r.get("dropped") != own for r in rows):
            self.dir.write_jsonl(METRICS, [{**r, "dropped": own} if r["epoch"] <= until else r for r in rows])


def summarize(run_dir: RunDir, facts: dict) -> dict:
    """The summary of a finished run: the run's ``facts`` and what its records say (final accuracies, speed
    over the epochs it trained itself, events, the accuracy around a permanent run's drops)."""
    rows = run_dir.read_jsonl(METRICS)
    events = run_dir.read_jsonl(EVENTS)
    own = rows[run_dir.fork_epoch() :]  # the epochs this run trained, not those taken from a warm-up
    last = rows[-1] if rows else {}
    summary = {
        **facts,
        "name": run_dir.path.name,
        "final_test_acc": last.get("test_acc"),
        "final_train_acc": last.get("train_acc"),
        "gap": (last["train_acc"] - last["test_acc"]) if last else None,
        "images_per_s": (sum(r["images_per_s"] for r in own) / len(own)) if own else None,
        "events": len(events),
    }
    if "compression" in facts:
        drops = [e for e in events if e["event"] == "drop"]
        summary["compression"] = {
            **facts["compression"],
            "test_acc_before": drops[0].get("test_acc_before") if drops else None,
            "test_acc_after": drops[-1].get("test_acc_after") if drops else None,
        }
    return summary
