"""Run by test_distributed.py under torchrun: one short run per method given, and per rank a file with
the digest of every tensor a pruning event may change, taken right after each event.

    torchrun --nproc-per-node 2 tests/ddp_worker.py OUT repr prune-taylor
"""

import atexit
import json
import os
import sys
from pathlib import Path

import torch.distributed as dist

from prunekit import distributed
from prunekit.callbacks import Callback
from prunekit.config import resolve
from prunekit.engine import start_run

SETTINGS = {"dataset": "synthetic", "model": "c2_8", "batch_size": 64, "epochs": 4, "seed": 3}
METHODS = {"repr": {"s1": 1, "s2": 1}, "prune-taylor": {"target": 0.5}}


class EventDigests(Callback):
    def __init__(self):
        self.events, self.warnings = [], []

    def event(self, r, record: dict) -> None:
        self.events.append(
            {
                "event": record["event"],
                "epoch": record["epoch"],
                "dropped": [d.nonzero().flatten().tolist() for d in r.masks.dropped],
                "digest": distributed.state_digest(distributed.run_tensors(r.model, r.masks, r.optimizer)),
            }
        )

    def warning(self, run, message: str) -> None:
        self.warnings.append(message)


def main() -> None:
    out = Path(sys.argv[1])
    # registered before prunekit joins the group, so it runs after prunekit's own exit handler
    exit_file = out / f"group_at_exit_rank{os.environ['RANK']}.json"
    atexit.register(lambda: exit_file.write_text(json.dumps({"initialized": dist.is_initialized()})))
    report = {}
    for method in sys.argv[2:]:
        cb = EventDigests()
        start_run(
            resolve({**SETTINGS, "method": method, "out": str(out), "name": method}, METHODS[method]), callbacks=[cb]
        )
        report[method] = {"events": cb.events, "warnings": cb.warnings}
    rank = distributed.world().rank
    (out / f"digests_rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
