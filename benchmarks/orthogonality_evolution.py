"""How orthogonal each layer's filters are over a run: mean O_f per layer at init, at
each RePr drop, at the warm-up and at the end.

    python benchmarks/orthogonality_evolution.py benchmarks/results/c3_32-paper/standard_seed1 \
        benchmarks/results/c3_32-paper/repr_seed1 [--out FILE.md]

O_f is RePr's overlap of filter f with the rest of its layer's alive filters (unit rows, mean
|cosine| with the others; 0 = orthogonal to all). Sources, nothing trained again:
the initial weights are rebuilt from the run's seed (the engine seeds torch, then
builds the model); epoch 20 comes from ``warmup.pt`` when the run kept one; a
drop's figures are the scores its event recorded (orthogonality ranker without
fan-in correction: score = −O_f, every filter alive at a drop); the end comes from
``checkpoint.pt``. The last row is what random filters of the layer's fan-in K
would give: √(2/(πK)) · (J − 1)/J.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from _results import run_script

from prunekit.config import resolve
from prunekit.engine import build_model, load_data
from prunekit.records import CHECKPOINT, EVENTS, WARMUP, RunDir
from prunekit_plugins.repr import orthogonality


def conv_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The conv filter tensors of a state dict, by layer name (``features.0``...)."""
    return {k[: -len(".weight")]: v for k, v in state.items() if k.endswith(".weight") and v.dim() == 4}


def mean_overlap(weights: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean O_f of the filters alive (not held at zero), each against the other alive ones."""
    out = {}
    for name, w in weights.items():
        rows = w.reshape(w.shape[0], -1)
        out[name] = orthogonality(rows[rows.norm(dim=1) > 0]).mean().item()
    return out


def initial_weights(cfg: dict) -> dict[str, torch.Tensor]:
    """As the engine builds them: seed, then the model for the run's dataset (its shape and classes)."""
    run_cfg = resolve(cfg)
    data = load_data(run_cfg)
    torch.manual_seed(run_cfg.seed)
    return conv_weights(build_model(run_cfg, data).state_dict())


def rows_for(run: Path) -> list[tuple[str, dict[str, float]]]:
    rd = RunDir(run)
    cfg = rd.read_config()
    init = initial_weights(cfg)
    rows = [("init (epoch 0)", mean_overlap(init))]
    if rd.file(WARMUP).exists():
        state = torch.load(rd.file(WARMUP), map_location="cpu", weights_only=True)
        rows.append((f"warm-up (epoch {state['epoch']})", mean_overlap(conv_weights(state["model"]))))
    ranker_args = cfg.get("ranker_args") or {}
    if (
        cfg.get("ranker") == "orthogonality"
        and not ranker_args.get("fan_in_correction")
        and ranker_args.get("normalization", "filter") == "filter"
    ):
        for ev in rd.read_jsonl(EVENTS):
            if ev["event"] == "drop" and ev.get("scores"):
                rows.append(
                    (
                        f"drop at epoch {ev['epoch']}",
                        {g: -sum(s) / len(s) for g, s in ev["scores"].items() if None not in s},
                    )
                )
    state = torch.load(rd.file(CHECKPOINT), map_location="cpu", weights_only=True)
    rows.append((f"end (epoch {state['epoch']})", mean_overlap(conv_weights(state["model"]))))
    return rows + [("random filters, expected", random_baseline(init))]


def random_baseline(weights: dict[str, torch.Tensor]) -> dict[str, float]:
    out = {}
    for name, w in weights.items():
        j, k = w.shape[0], w[0].numel()
        out[name] = math.sqrt(2 / (math.pi * k)) * (j - 1) / j
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    lines = []
    for run in args.runs:
        rows = rows_for(run)
        layers = list(rows[0][1])
        lines += [
            f"# {run.name}: mean O_f per layer (lower = more orthogonal)",
            "",
            "| when | " + " | ".join(layers) + " |",
            "|---|" + "---|" * len(layers),
        ]
        lines += [
            f"| {when} | " + " | ".join(f"{v[g]:.4f}" if g in v else "–" for g in layers) + " |" for when, v in rows
        ]
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    run_script(main)
