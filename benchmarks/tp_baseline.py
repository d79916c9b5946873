"""The baseline a user would otherwise reach for: Torch-Pruning's own pruner on a trained prunekit run.

    python benchmarks/tp_baseline.py --base RUN_DIR --keep-macs 0.5 --out DIR
    prunekit run --method standard --init-from DIR ...      # fine-tune it with prunekit's recipe

Prunes the model of RUN_DIR (a finished `prunekit run` folder) with ``tp.pruner.BasePruner``
(``MetaPruner`` is an alias of it in torch-pruning 1.6), group L2-norm importance
(``GroupMagnitudeImportance(p=2)``, its other options at their defaults), global ranking, the
classifier left alone, in small iterative steps until prunekit's ``count_macs`` gives at most
``keep-macs`` of the dense MACs (both tools measured the same way). The final step may overshoot
the target by up to one step's channels; the keep reached is reported.

Writes DIR/pruned.pt in prunekit's export format (``removed`` keyed by prunekit's group names, in
the dense model's channel numbering; ``config`` the base run's), checked by rebuilding it with
``prunekit.export.apply_pruned`` and comparing outputs with the tp-pruned model, and
DIR/tp_prune.json (MACs, parameters, keep fractions, channels removed per group, seconds).
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import shutil
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch_pruning as tp
from _results import run_script

from prunekit import registry
from prunekit.cost import count_macs, count_params
from prunekit.errors import PrunekitError
from prunekit.export import FORMAT, apply_pruned, physically_prune
from prunekit.groups import build_groups
from prunekit.records import RunDir

TOLERANCE = 1e-5


def load_base(run_dir: Path, image: int) -> tuple[dict, nn.Module]:
    """The base run's config and its model with the last checkpoint's weights."""
    rd = RunDir(run_dir)
    if not rd.file("config.json").exists():
        raise PrunekitError(f"{run_dir} is not a run folder (no config.json); give a folder written by `prunekit run`")
    cfg = json.loads(rd.file("config.json").read_text())
    ckpt = rd.load_checkpoint()
    if ckpt is None:
        raise PrunekitError(f"{run_dir} holds no checkpoint.pt; give a finished run")
    model = dense_model(cfg, image)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as exc:
        raise PrunekitError(f"the checkpoint in {run_dir} does not fit model {cfg['model']} ({exc})") from None
    return cfg, model.eval()


def dense_model(cfg: dict, image: int) -> nn.Module:
    return registry.get("models", cfg["model"])(num_classes=10, in_channels=3, image_size=image)


def classifier(model: nn.Module) -> nn.Module:
    """The head prunekit leaves alone: the model's declared classifier, else its last Linear."""
    head = getattr(model, "get_classifier", None)
    if callable(head) and isinstance(head(), nn.Module) and any(True for _ in head().parameters()):
        return head()
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise PrunekitError(f"{type(model).__name__} has no classifier (no Linear layer) to leave out")
    return linears[-1]


def excluded_modules(model: nn.Module, cfg: dict) -> list[str]:
    """Modules whose filters the base run's ``exclude`` / ``exclude_first`` keep out of prunekit's groups:
    torch-pruning must leave them alone too, or its cuts would have no prunekit group to go to."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    out = [n for n in names if any(fnmatch.fnmatch(n, pat) for pat in cfg.get("exclude") or [])]
    if cfg.get("exclude_first") and names:
        out.append(names[0])
    return out


def owner_map(groups) -> dict[str, tuple[object, torch.Tensor, torch.Tensor]]:
    """Module name -> (prunekit group, positions along its weight's dim 0, group channel of each), for
    every module whose output rows a group owns."""
    found = {}
    for g in groups:
        for s in g.slices:
            if s.role == "owner" and s.dim == 0 and s.name == f"{s.module}.weight":
                if s.module in found and found[s.module][0] is not g:
                    raise PrunekitError(
                        f"module {s.module} is owned by two prunekit groups ({found[s.module][0].name}, {g.name})"
                    )
                found[s.module] = (g, s.index, s.channel)
    return found


def prune_with_tp(
    model: nn.Module, x: torch.Tensor, keep: float, steps: int, max_sparsity: float, ignored: list[nn.Module]
) -> tuple[dict[str, list[int]], int, int]:
    """Prune ``model`` in place with torch-pruning until its MACs are at most ``keep`` of the dense count.
    Returns, per root module name, its removed channels in the ORIGINAL numbering, the steps taken and
    the groups pruned."""
    names = {m: n for n, m in model.named_modules()}
    target = keep * count_macs(model, x)
    pruner = tp.pruner.BasePruner(
        model,
        x,
        importance=tp.importance.GroupMagnitudeImportance(p=2),
        global_pruning=True,
        pruning_ratio=max_sparsity,
        iterative_steps=steps,
        ignored_layers=ignored,
    )
    survivors: dict[str, list[int]] = {}  # root name -> original index of each channel it has now
    removed: dict[str, list[int]] = {}
    pruned_groups = 0
    while count_macs(model, x) > target:
        if pruner.current_step >= steps:
            raise PrunekitError(
                f"{steps} steps to {max_sparsity:.0%} of the channels leave more than {keep} of the "
                f"dense MACs; raise --max-sparsity"
            )
        for group in pruner.step(interactive=True):
            root = group[0].dep.target.module
            if not pruner.DG.is_out_channel_pruning_fn(group[0].dep.handler):
                raise PrunekitError(f"torch-pruning pruned the inputs of {names[root]}, not its outputs")
            idxs = [int(i) for i in tp._helpers.to_plain_idxs(group[0].idxs)]  # numbering at this step
            if not idxs:  # global pruning yields every group each step, most with nothing to cut
                group.prune()
                continue
            name = names[root]
            now = survivors.setdefault(name, list(range(pruner.DG.get_out_channels(root))))
            gone = set(idxs)
            removed.setdefault(name, []).extend(now[i] for i in idxs)
            survivors[name] = [orig for i, orig in enumerate(now) if i not in gone]
            group.prune()
            pruned_groups += 1
    for name, left in survivors.items():  # the bookkeeping must agree with the cut layers
        have = pruner.DG.get_out_channels(model.get_submodule(name))
        if have != len(left):
            raise PrunekitError(f"internal: {name} has {have} channels, the record says {len(left)}")
    return {n: sorted(r) for n, r in removed.items()}, pruner.current_step, pruned_groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="a finished `prunekit run` folder (config.json, checkpoint.pt)")
    ap.add_argument("--keep-macs", type=float, default=0.5, help="fraction of the dense MACs to keep (default 0.5)")
    ap.add_argument("--out", required=True, help="export folder to write (pruned.pt, tp_prune.json)")
    ap.add_argument("--steps", type=int, default=400, help="iterative_steps of the tp pruner (default 400)")
    ap.add_argument(
        "--max-sparsity",
        type=float,
        default=0.9,
        help="channel fraction the tp schedule reaches at its last step (default 0.9); each step "
        "removes max-sparsity/steps of the channels, and pruning stops once the MACs target is met",
    )
    ap.add_argument("--image", type=int, default=32, help="input size (default 32, CIFAR)")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = ap.parse_args()
    if not 0.0 < args.keep_macs < 1.0:
        raise PrunekitError(f"--keep-macs must be in (0, 1), got {args.keep_macs}")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
        raise PrunekitError(f"{out} already exists; choose another --out, or add --overwrite to replace it")

    cfg, model = load_base(Path(args.base), args.image)
    x = torch.zeros(1, 3, args.image, args.image)
    exclude, exclude_first = cfg.get("exclude") or [], bool(cfg.get("exclude_first", False))
    groups = build_groups(copy.deepcopy(model), x, exclude=exclude, exclude_first=exclude_first)
    owners = owner_map(groups)
    dense = {"macs": count_macs(model, x), "params": count_params(model), "channels": sum(g.size for g in groups)}
    ignored = [classifier(model)] + [model.get_submodule(n) for n in excluded_modules(model, cfg)]
    reference = copy.deepcopy(model)

    t0 = time.perf_counter()
    root_removed, steps, cuts = prune_with_tp(model, x, args.keep_macs, args.steps, args.max_sparsity, ignored)
    seconds = time.perf_counter() - t0

    removed = {g.name: [] for g in groups}
    for root, idxs in root_removed.items():
        if root not in owners:
            raise PrunekitError(
                f"torch-pruning cut the outputs of {root}, which no prunekit group owns "
                f"(groups: {', '.join(g.name for g in groups)}); this model's groups differ between the tools"
            )
        group, index, channel = owners[root]
        where = {int(p): int(c) for p, c in zip(index.tolist(), channel.tolist())}
        removed[group.name] = sorted(set(removed[group.name]) | {where[i] for i in idxs})
    model.eval()
    record = {
        "format": FORMAT,
        "config": cfg,
        "removed": removed,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }

    # 1. the export must rebuild (as `--init-from` does) to the very model torch-pruning made. Its
    # state_dict fixes every weight, so this checks the shapes, not which channels were named;
    # 2. hence cutting the named channels out of the dense trained model with prunekit must give the
    # same model too (torch-pruning only slices weights): this checks the original numbering.
    rebuilt = apply_pruned(
        dense_model(cfg, args.image).eval(), record, x, exclude=exclude, exclude_first=exclude_first
    ).eval()
    dropped = [torch.isin(torch.arange(g.size), torch.tensor(removed[g.name], dtype=torch.long)) for g in groups]
    recut = physically_prune(reference, groups, dropped, x).eval()
    batch = torch.randn(8, 3, args.image, args.image, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(batch)
        diff = (rebuilt(batch) - ours).abs().max().item()
        index_diff = (recut(batch) - ours).abs().max().item()
        dense_diff = (reference(batch) - ours).abs().max().item()
    print(
        f"max |rebuilt export - tp-pruned| on 8 random images: {diff:.3g}; "
        f"max |dense cut at the recorded channels - tp-pruned|: {index_diff:.3g} (tolerance {TOLERANCE:g})"
    )
    if not diff <= TOLERANCE:
        raise PrunekitError(f"the export rebuilt by prunekit differs from the tp-pruned model by {diff:.3g}")
    if not index_diff <= TOLERANCE:
        raise PrunekitError(
            f"the recorded channels do not name the ones torch-pruning removed (outputs differ by {index_diff:.3g})"
        )

    pruned = {
        "macs": count_macs(model, x),
        "params": count_params(model),
        "channels": dense["channels"] - sum(len(r) for r in removed.values()),
    }
    report = {
        "base": str(args.base),
        "model": cfg["model"],
        "torch_pruning": tp.__version__,
        "torch": torch.__version__,
        "pruner": f"tp.pruner.BasePruner(global_pruning=True, iterative_steps={args.steps:d}, "
        f"pruning_ratio={args.max_sparsity:g})",
        "importance": "tp.importance.GroupMagnitudeImportance(p=2)  (group_reduction='mean', normalizer='mean')",
        "ignored": [n for n, m in model.named_modules() if any(m is i for i in ignored)],
        "keep_macs_target": args.keep_macs,
        "steps_taken": steps,
        "group_cuts": cuts,
        "dense": dense,
        "pruned": pruned,
        "keep": {k: pruned[k] / dense[k] for k in dense},
        "reduction_macs": dense["macs"] / pruned["macs"],
        "removed_per_group": {g.name: {"removed": len(removed[g.name]), "of": g.size} for g in groups},
        "seconds": seconds,
        "max_abs_diff_rebuilt_vs_tp": diff,
        "max_abs_diff_recut_vs_tp": index_diff,
        "max_abs_diff_dense_vs_tp": dense_diff,
    }
    if out.exists() and args.overwrite:
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(record, out / "pruned.pt")
    (out / "tp_prune.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{cfg['model']}: MACs {dense['macs']:,} -> {pruned['macs']:,} (keep {report['keep']['macs']:.4f}, "
        f"{report['reduction_macs']:.2f}x), params {dense['params']:,} -> {pruned['params']:,} "
        f"(keep {report['keep']['params']:.4f}), channels {dense['channels']} -> {pruned['channels']}, "
        f"{steps} tp steps, {seconds:.2f} s"
    )
    for g in groups:
        if removed[g.name]:
            print(f"  {g.name:28s} -{len(removed[g.name]):4d} of {g.size}")
    print(
        f"wrote {out / 'pruned.pt'} and {out / 'tp_prune.json'}; fine-tune with "
        f"`prunekit run --method standard --model {cfg['model']} --init-from {out} ...`"
    )


if __name__ == "__main__":
    run_script(main)
