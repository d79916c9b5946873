"""Physical removal of held filters (torch-pruning cuts the model) and the exported files.

``physically_prune`` returns a smaller copy of a model: for every group with held channels,
torch-pruning removes them from the root conv and from everything coupled to it (norm
channels, consumers' inputs, the flatten→Linear block, residual partners). ``pruned.pt`` keeps
what prunekit needs to rebuild that shape and reload the weights (``load_pruned``), with
``weights_only`` loading; ``model.pt2`` is a ``torch.export`` program that plain torch runs.
"""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch_pruning as tp

from .errors import PrunekitError, first_line
from .groups import GroupSet

FORMAT = "prunekit-pruned-1"


def physically_prune(
    model: nn.Module, groups: GroupSet, dropped: list[torch.Tensor], example_inputs: torch.Tensor
) -> nn.Module:
    """A copy of ``model`` without the channels marked in ``dropped`` (bool per group)."""
    pruned = copy.deepcopy(model)
    if not any(bool(d.any()) for d in dropped):
        return pruned
    device = next((p.device for p in pruned.parameters()), torch.device("cpu"))
    was_training = pruned.training
    pruned.eval()
    try:
        with torch.enable_grad():  # torch-pruning traces through autograd, even inside a caller's no_grad
            graph = tp.DependencyGraph().build_dependency(pruned, example_inputs=example_inputs[:1].to(device))
    except Exception as exc:  # noqa: BLE001 - tracing runs the model
        raise PrunekitError(
            f"torch-pruning cannot trace {type(model).__name__} for export ({first_line(exc)})"
        ) from None
    for group, d in zip(groups, dropped):
        if not d.any():
            continue
        root = pruned.get_submodule(group.name)
        owner = next(s for s in group.slices if s.role == "owner" and s.name == f"{group.name}.weight")
        idxs = sorted(owner.positions(d).tolist())
        try:
            fn = graph.get_pruner_of_module(root).prune_out_channels
            tp_group = graph.get_pruning_group(root, fn, idxs=idxs)
            if not graph.check_pruning_group(tp_group):
                raise ValueError("torch-pruning finds the cut invalid (it would leave a layer with no channels)")
            tp_group.prune()
        except Exception as exc:  # noqa: BLE001 - any failure of the library on this layer
            raise PrunekitError(
                f"torch-pruning cannot cut layer {group.name} of {type(model).__name__} ({first_line(exc)}); "
                f"leave it out of pruning with --set exclude=[{group.name}] and prune again"
            ) from None
    pruned.train(was_training)
    return pruned


def pruned_record(pruned: nn.Module, groups: GroupSet, dropped: list[torch.Tensor], config: dict) -> dict:
    """What ``pruned.pt`` holds: the run's config, the removed channels per group, the weights."""
    return {
        "format": FORMAT,
        "config": config,
        "removed": {g.name: d.nonzero().flatten().tolist() for g, d in zip(groups, dropped)},
        "state_dict": {k: v.detach().cpu() for k, v in pruned.state_dict().items()},
    }


def read_pruned(path: Path) -> dict:
    """``pruned.pt`` of an export (a folder or the file), checked."""
    path = Path(path)
    file = path / "pruned.pt" if path.is_dir() else path
    try:
        record = torch.load(file, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PrunekitError(f"{path} holds no pruned.pt; give a folder written by `prunekit export`") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise PrunekitError(f"{file} is not a prunekit export ({FORMAT}); give a folder written by `prunekit export`")
    return record


def apply_pruned(
    model: nn.Module, record: dict, example_inputs: torch.Tensor, exclude=(), exclude_first: bool = False
) -> nn.Module:
    """Cut ``model`` (built dense, as the export's run built it) to the export's shape and load its weights."""
    from .groups import build_groups

    groups = build_groups(model, example_inputs[:1], exclude=exclude, exclude_first=exclude_first)
    removed = record["removed"]
    unknown = sorted(set(removed) - {g.name for g in groups})
    if unknown:
        raise PrunekitError(
            f"the export removed channels of {', '.join(unknown)}, which this model has no group for; "
            f"build the model the export came from (its config.json)"
        )
    dropped = []
    for g in groups:
        d = torch.zeros(g.size, dtype=torch.bool)
        d[removed.get(g.name, [])] = True
        dropped.append(d)
    pruned = physically_prune(model, groups, dropped, example_inputs)
    try:
        pruned.load_state_dict(record["state_dict"])
    except RuntimeError as exc:
        raise PrunekitError(f"the export's weights do not fit the cut model ({first_line(exc)})") from None
    return pruned


@torch.no_grad()
def paired_latency_ms(
    first: nn.Module, second: nn.Module, example: torch.Tensor, repeats: int, warmup: int = 1
) -> tuple[float, float]:
    """Median milliseconds of one forward pass of ``example`` through each model, the two run
    alternately (after ``warmup`` untimed passes each) so that both see the same machine load."""
    first.eval()
    second.eval()
    sync = torch.cuda.synchronize if example.device.type == "cuda" else (lambda *a: None)

    def once(model: nn.Module) -> float:
        t0 = time.perf_counter()
        model(example)
        sync(example.device)
        return (time.perf_counter() - t0) * 1000

    for _ in range(warmup):
        once(first)
        once(second)
    times = [(once(first), once(second)) for _ in range(repeats)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def speed(dense: nn.Module, pruned: nn.Module, example: torch.Tensor, repeats: int) -> dict:
    """``paired_latency_ms`` as a record: dense and pruned milliseconds and their ratio."""
    dense_ms, pruned_ms = paired_latency_ms(dense, pruned, example, repeats)
    return {"dense_ms": dense_ms, "pruned_ms": pruned_ms, "speedup": dense_ms / pruned_ms}


def export_program(model: nn.Module, example: torch.Tensor, path: Path) -> str:
    """Write a ``torch.export`` program of ``model`` (batch size dynamic where the model allows)."""
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    try:
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
        how = "dynamic batch"
    except Exception:  # noqa: BLE001 - a model that specialises on its batch size still exports statically
        program = torch.export.export(model, (example,))
        how = f"static batch {len(example)}"
    torch.export.save(program, str(path))
    return how


def load_run(run_dir: Path, *, device: str = "cpu", data_dir: str | None = None):
    """A run rebuilt from its folder at its last checkpoint (model, groups and held masks), for export."""
    from .config import resolve
    from .engine import Run
    from .records import RunDir

    rd = RunDir(Path(run_dir))
    if not rd.file("config.json").exists():
        raise PrunekitError(f"{run_dir} is not a run folder (no config.json); give a folder written by `prunekit run`")
    ckpt = rd.load_checkpoint()
    if ckpt is None and rd.finished:  # e.g. a committed run: checkpoints are not kept in git
        raise PrunekitError(
            f"{run_dir} is finished but its checkpoint.pt is gone (not kept in git); train it again to export it: "
            f"{rd.rerun_command()}"
        )
    if ckpt is None:
        raise PrunekitError(f"{run_dir} has no checkpoint.pt to export; finish (or resume) the run first")
    saved = rd.read_config()
    cfg = resolve(
        {
            **saved,
            "out": str(rd.path.parent),
            "name": rd.path.name,
            "device": device,
            **({"data_dir": data_dir} if data_dir else {}),
        }
    )
    run = Run(cfg)
    run.load_state_dict(ckpt)
    return run


def export_run(
    run_dir: Path,
    out: Path,
    *,
    overwrite: bool = False,
    device: str = "cpu",
    compare_batches: int = 2,
    repeats: int = 10,
    data_dir: str | None = None,
    log=print,
) -> dict:
    """Cut a run's held filters out of its last checkpoint and write ``out``: ``model.pt2``,
    ``pruned.pt`` and ``export.json`` (params, MACs, latency, and the largest output difference
    from the masked model on real test batches). Written to a temporary folder, then moved in place;
    an existing export is replaced only with ``overwrite``."""
    import json
    import os
    import shutil
    import tempfile

    from .records import RunDir, atomic_write_text

    rd, out = RunDir(run_dir), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise PrunekitError(f"{out} already exists; choose another --out, or add --overwrite to replace it")
    if out.resolve() == rd.path.resolve() or rd.path.resolve() in out.resolve().parents:
        raise PrunekitError(f"--out {out} is inside the run folder; choose a folder outside it")
    run = load_run(run_dir, device=device, data_dir=data_dir)
    cfg, saved = run.cfg, rd.read_config()
    masked = run.model.to(memory_format=torch.contiguous_format).eval()
    held = sum(int(d.sum()) for d in run.masks.dropped)
    t0 = time.perf_counter()
    small = run.pruner.export().eval()
    cut_seconds = time.perf_counter() - t0
    one = torch.zeros((1,) + run.data.shape, device=run.device)
    test = run.data.batches("test", 100, device=run.device)
    worst, compared = 0.0, 0
    with torch.no_grad():
        for i, (xb, _) in enumerate(test):
            if i >= compare_batches:
                break
            worst = max(worst, float((masked(xb) - small(xb)).abs().max()))
            compared += len(xb)
    from .cost import count_macs, count_params

    sizes = {
        "dense": {"params": count_params(masked), "macs": count_macs(masked, one)},
        "pruned": {"params": count_params(small), "macs": count_macs(small, one)},
    }
    latency = {
        f"batch_{batch}": speed(masked, small, torch.randn((batch,) + run.data.shape, device=run.device), repeats)
        for batch in (1, 64)
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        program = export_program(small, torch.zeros((2,) + run.data.shape, device=run.device), tmp / "model.pt2")
        torch.save(pruned_record(small, run.groups, run.masks.dropped, saved), tmp / "pruned.pt")
        report = {
            "run": str(rd.path),
            "model": cfg.model,
            "dataset": cfg.dataset,
            "epoch": run.epoch,
            "input_shape": list(run.data.shape),
            "filters_removed": held,
            "note": None if held else "the run holds no dropped filters: this export is the dense model",
            "removed_per_group": {g.name: int(d.sum()) for g, d in zip(run.groups, run.masks.dropped)},
            "group_sizes": {g.name: g.size for g in run.groups},
            **sizes,
            "keep": {k: sizes["pruned"][k] / sizes["dense"][k] for k in ("params", "macs")},
            "max_abs_diff_vs_masked": worst,
            "compared_images": compared,
            "latency": latency,
            "latency_repeats": repeats,
            "device": str(run.device),
            "threads": torch.get_num_threads(),
            "cut_seconds": cut_seconds,
            "program": program,
            "torch": torch.__version__,
        }
        atomic_write_text(json.dumps(report, indent=2) + "\n", tmp / "export.json")
        os.chmod(tmp, 0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.replaced")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
