"""Several processes under ``torchrun``: PyTorch's own process group and DistributedDataParallel.

``torchrun --nproc-per-node N -m prunekit run ...`` starts N ranks; each reads its place from the
environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK). gloo carries the collectives on the CPU,
NCCL on CUDA (one GPU per rank, ``cuda:LOCAL_RANK``). A plain ``prunekit run`` is a world of one:
every helper here is then a no-op.

How the ranks stay one run:
* each global batch of every epoch's shuffle is split across the ranks (``Batches(shard=...)``),
  so N ranks see what one process with the same global batch sees;
* DDP averages the gradients, so every rank takes the same optimizer step;
* pruning events run on every rank over the same weights and the same ranking batches, then rank
  0's parameters, buffers, masks and optimizer state are broadcast (``broadcast_from_main``): a
  kernel that is not bitwise reproducible cannot make the ranks disagree, and a disagreement
  before the broadcast is reported;
* only rank 0 writes records and checkpoints.
"""

from __future__ import annotations

import atexit
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import PrunekitError


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of a run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def sum(self, values: list[float | int], device: torch.device) -> list[float]:
        """The sums over all ranks of each of ``values`` (float64 on the wire)."""
        t = torch.tensor(values, dtype=torch.float64, device=device)
        if self.distributed:
            dist.all_reduce(t)
        return t.tolist()

    def same_everywhere(self, digest: str, device: torch.device) -> bool:
        """Whether every rank passed the same ``digest``."""
        if not self.distributed:
            return True
        mine = torch.tensor(list(bytes.fromhex(digest)), dtype=torch.uint8, device=device)
        gathered = [torch.empty_like(mine) for _ in range(self.size)]
        dist.all_gather(gathered, mine)
        return all(torch.equal(g, mine) for g in gathered)


_WORLD = World()


def world() -> World:
    """The world of this process (one rank unless ``setup`` joined a torchrun group)."""
    return _WORLD


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str) -> World:
    """Join the process group torchrun prepared (once per process) and return this rank's world."""
    global _WORLD
    if not launched_by_torchrun() or _WORLD.distributed:
        return _WORLD
    size, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device.startswith("cuda:"):
        raise PrunekitError(
            f"--device {device} names one GPU, but under torchrun each rank takes cuda:LOCAL_RANK; "
            f"give --device cuda (or auto)"
        )
    if use_cuda:
        gpus = torch.cuda.device_count()
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", size))
        if per_node > gpus:
            raise PrunekitError(
                f"torchrun started {per_node} ranks on this machine but it has {gpus} GPU(s); "
                f"give --nproc-per-node {gpus} or fewer (or --device cpu)"
            )
        torch.cuda.set_device(local)
    backend = "nccl" if use_cuda else "gloo"
    dist.init_process_group(backend=backend)
    atexit.register(_leave_group)
    _WORLD = World(rank=rank, size=size, local_rank=local)
    return _WORLD


def _leave_group() -> None:
    """Destroy the process group at exit, while the interpreter is still whole. Left to interpreter
    shutdown, gloo's worker threads may still hold finished work with tensors in it, and freeing those
    then aborts the process (SIGABRT, seen on a rank that finished before rank 0 had written its records)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, world: World) -> None:
    if batch_size % world.size:
        raise PrunekitError(
            f"--batch-size {batch_size} (the global batch) does not divide among {world.size} ranks; "
            f"give a multiple of {world.size}, e.g. {batch_size - batch_size % world.size or world.size}"
        )


def state_digest(tensors) -> str:
    """A short hash of the bytes of ``tensors`` (in order): equal digests mean bitwise-equal values."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def run_tensors(model: torch.nn.Module, masks, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every tensor a pruning event may change: parameters, buffers, masks (with the values they keep
    of dropped filters) and optimizer state."""
    tensors = [t for t in model.state_dict().values() if isinstance(t, torch.Tensor)]
    tensors += list(masks.dropped)
    for kept in masks.before_drop:
        tensors += [v for _, v in sorted(kept.items()) if isinstance(v, torch.Tensor)]
    for state in optimizer.state.values():
        tensors += [v for _, v in sorted(state.items()) if isinstance(v, torch.Tensor)]
    return tensors


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def broadcast_from_main(world: World, model: torch.nn.Module, masks, optimizer: torch.optim.Optimizer) -> bool:
    """Make every rank hold rank 0's model, masks and optimizer state; return whether they already
    agreed bitwise (the state is sent only when they did not)."""
    if not world.distributed:
        return True
    device = next(model.parameters()).device
    if world.same_everywhere(state_digest(run_tensors(model, masks, optimizer)), device):
        return True
    payload = [
        _to_cpu({"model": model.state_dict(), "masks": masks.state_dict(), "optimizer": optimizer.state_dict()})
        if world.main
        else None
    ]
    dist.broadcast_object_list(payload, src=0, device=device if device.type == "cuda" else None)
    if not world.main:
        model.load_state_dict(payload[0]["model"])
        masks.load_state_dict(payload[0]["masks"])
        optimizer.load_state_dict(payload[0]["optimizer"])
    return False
