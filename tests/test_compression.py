"""Compression: Pruner targets, the cost model against the cut model, held masks, `prunekit export`,
starting weights (--init-from, --pretrained), and one clear line for bad input."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import run_cli

from prunekit import PrunekitError, registry
from prunekit.cli import main
from prunekit.cost import count_macs, count_params
from prunekit.pruner import Pruner

SIZE = 32


def _build(name: str, **kwargs) -> nn.Module:
    return registry.get("models", name)(num_classes=10, in_channels=3, image_size=SIZE, **kwargs)


@torch.no_grad()
def _non_trivial(model: nn.Module, seed: int = 1) -> nn.Module:
    """Eval mode with BatchNorm statistics and affine parameters that are neither identity nor
    degenerate (calibrated on a random batch, then perturbed), and the head scaled so the logits are O(1):
    a wrong cut shows in the outputs well above 1e-4."""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        if m.affine:
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.2, generator=g)
        m.reset_running_stats()
        m.momentum = None  # one batch: running stats = that batch's
    model.train()
    model(torch.randn(8, 3, SIZE, SIZE, generator=g))
    model.eval()
    for m in norms:
        m.momentum = 0.1
        m.running_mean.add_(0.1 * m.running_var.sqrt() * torch.randn(m.running_mean.shape, generator=g))
        m.running_var.mul_(torch.empty(m.running_var.shape).uniform_(0.7, 1.4, generator=g))
    return model


@torch.no_grad()
def _scale_head(model: nn.Module, x: torch.Tensor) -> None:
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    scale = model(x).std()
    head.weight.div_(scale)
    head.bias.div_(scale)
    assert 0.5 < float(model(x).std()) < 2.0


def _reparameterized_repvgg():
    from timm.utils.model import reparameterize_model

    model = _non_trivial(_build("timm:repvgg_a0"))  # BN statistics first: reparameterizing fuses them
    return reparameterize_model(model)


def _stride2_resnet18():
    model = _non_trivial(_build("timm:resnet18", small_input=False))
    assert model.prunekit_stem == "stem unchanged" and model.conv1.stride == (2, 2)  # 7x7/2 conv + 3x3/2 max-pool
    return model


# one of each family; each builds, drops and exports in about a second on one thread
ARCHS = {
    "c3_32": lambda: _non_trivial(_build("c3_32")),  # plain CNN, flatten -> Linear
    "resnet20": lambda: _non_trivial(_build("resnet20")),  # CIFAR residual, 1x1 shortcuts
    "timm:repvgg_a0-reparam": _reparameterized_repvgg,  # plain VGG-style 3x3 chain (timm)
    "timm:lcnet_035": lambda: _non_trivial(_build("timm:lcnet_035")),  # plain depthwise-separable, no skips
    "timm:resnet18": lambda: _non_trivial(_build("timm:resnet18")),  # residual
    "timm:mobilenetv2_050": lambda: _non_trivial(_build("timm:mobilenetv2_050")),  # depthwise, inverted res.
    "timm:efficientnet_b0": lambda: _non_trivial(_build("timm:efficientnet_b0")),  # depthwise + squeeze-excite
    "timm:seresnet18": lambda: _non_trivial(_build("timm:seresnet18")),  # squeeze-excite residual
    "timm:resnext26ts": lambda: _non_trivial(_build("timm:resnext26ts")),  # grouped conv bottlenecks
    "timm:regnetx_002": lambda: _non_trivial(_build("timm:regnetx_002")),  # grouped conv (RegNet)
    "timm:resnet18-stride2-stem": _stride2_resnet18,  # stride-2 stem + max-pool kept
}


# --------------------------------------------------------------------------- 1. export = masked model, exact counts
@pytest.mark.parametrize("arch", list(ARCHS))
def test_export_matches_the_masked_model_and_the_cost_model_counts_it_exactly(arch):
    torch.manual_seed(0)
    model = ARCHS[arch]()
    example = torch.randn(2, 3, SIZE, SIZE)
    x = torch.randn(2, 3, SIZE, SIZE)
    _scale_head(model, x)
    with torch.no_grad():
        dense_out = model(x)
    dense = {"params": count_params(model), "macs": count_macs(model, example[:1])}
    pruner = Pruner(model, example, ranker="l2")
    assert {k: pruner.cost.dense[k] for k in dense} == dense
    record = pruner.drop(keep=0.5, metric="macs")
    small = pruner.export()
    assert not small.training and small is not model
    with torch.no_grad():
        masked_out, small_out = model(x), small(x)
    assert (masked_out - dense_out).abs().max() > 1e-3  # the drop changed the model: the check below means something
    assert (masked_out - small_out).abs().max() <= 1e-4
    counted = {"params": count_params(small), "macs": count_macs(small, example[:1])}
    assert counted["params"] < dense["params"]
    counts = pruner.counts()
    assert {k: counts[k] for k in counted} == counted  # the cost model, exactly, on the cut shape
    assert counts["filters"] == pruner.cost.dense["filters"] - sum(int(d.sum()) for d in pruner.dropped)
    assert counts["macs"] <= 0.5 * dense["macs"]
    assert record["keep"] == 0.5 and record["metric"] == "macs" and record["counts"] == counts


# --------------------------------------------------------------------------- 2. targets
def _resnet20():
    torch.manual_seed(0)
    return _non_trivial(_build("resnet20")), torch.randn(2, 3, SIZE, SIZE)


def test_a_params_target_is_met_on_the_exported_shape():
    model, x = _resnet20()
    pruner = Pruner(model, x, ranker="l2")
    pruner.drop(keep=0.4, metric="params")
    counts = pruner.counts()
    assert counts["params"] <= 0.4 * pruner.cost.dense["params"]
    assert counts["params"] == count_params(pruner.export())


def test_layer_scope_reaches_the_target_with_a_uniform_ratio():
    model, x = _resnet20()
    ranker = registry.get("rankers", "l2").build("l2", scope="layer")
    pruner = Pruner(model, x, ranker=ranker)
    pruner.drop(keep=0.5, metric="macs")
    counts = pruner.counts()
    assert counts["macs"] <= 0.5 * pruner.cost.dense["macs"]
    assert counts["macs"] == count_macs(pruner.export(), x[:1])
    cap = ranker.max_layer_fraction
    fractions = [
        float(d.float().mean()) for d, g in zip(pruner.dropped, pruner.groups) if int(d.sum()) < int(cap * g.size)
    ]  # groups below their cap drop round(ratio * size)
    assert fractions and max(fractions) - min(fractions) <= 1 / min(g.size for g in pruner.groups)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_an_unreachable_target_is_refused_naming_the_reachable_minimum(scope):
    model, x = _resnet20()
    ranker = registry.get("rankers", "l2").build("l2", scope=scope, max_layer_fraction=0.5)
    pruner = Pruner(model, x, ranker=ranker)
    least = pruner.least_reachable("macs")
    assert 0.01 < least < 1
    with pytest.raises(PrunekitError) as exc:
        pruner.drop(keep=0.01, metric="macs")
    message = str(exc.value)
    assert "\n" not in message and f"{least:.4f}" in message and "--max-layer-fraction" in message
    assert not any(d.any() for d in pruner.dropped)  # nothing held after a refused drop
    with pytest.raises(PrunekitError, match=f"at least {least:.4f}"):
        pruner.check_target(0.01, "macs")
    pruner.check_target(least + 1e-3, "macs")  # just above the minimum: allowed, and reached
    pruner.drop(keep=least + 1e-3, metric="macs")
    kept = pruner.counts()["macs"] / pruner.cost.dense["macs"]
    assert least - 1e-12 <= kept <= least + 1e-3


# --------------------------------------------------------------------------- 3. held masks
def _owner_slices(model, pruner):
    params = dict(model.named_parameters())
    for group, dropped in zip(pruner.groups, pruner.dropped):
        if dropped.any():
            for sl in group.slices:
                if sl.role == "owner" and sl.name in params:
                    yield params[sl.name], sl.dim, sl.positions(dropped)


def _trained_one_step():
    model, x = _resnet20()
    y = torch.randint(0, 10, (2,), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # momentum everywhere before the drop
    return model, x, opt, step


def _all_zero(model, pruner, opt):
    return all(
        torch.count_nonzero(t.index_select(dim, pos)) == 0
        and torch.count_nonzero(opt.state[t]["momentum_buffer"].index_select(dim, pos)) == 0
        for t, dim, pos in _owner_slices(model, pruner)
    )


def test_held_filters_stay_exactly_zero_through_sgd_momentum():
    model, x, opt, step = _trained_one_step()
    pruner = Pruner(model, x, ranker="l2")
    pruner.drop(keep=0.5, metric="macs", optimizer=opt)
    assert any(d.any() for d in pruner.dropped)
    assert _all_zero(model, pruner, opt)  # the drop zeroed the slices and their momentum
    for _ in range(3):
        step()
        pruner.hold(opt)
        assert _all_zero(model, pruner, opt)
    # the control: a drop that leaves the momentum and no hold lets the filters come back; hold puts them back
    model, x, opt, step = _trained_one_step()
    pruner = Pruner(model, x, ranker="l2")
    pruner.drop(keep=0.5, metric="macs")
    step()
    assert not _all_zero(model, pruner, opt)
    pruner.hold(opt)
    assert _all_zero(model, pruner, opt)
    step()
    pruner.hold(opt)
    assert _all_zero(model, pruner, opt)


# --------------------------------------------------------------------------- 4. export through the CLI
FAST = ["--dataset", "synthetic", "--model", "c3_32", "--batch-size", "64", "--quiet"]


def _main(argv) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    return exc.value.code


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A 1-epoch standard base, a prune-l2 run from it to half the MACs, and its export."""
    root = tmp_path_factory.mktemp("compression")
    run = ["run", "--epochs", "1", "--out", str(root), *FAST]
    assert _main([*run, "--method", "standard", "--name", "base"]) == 0
    assert (
        _main(
            [
                *run,
                "--method",
                "prune-l2",
                "--init-from",
                str(root / "base"),
                "--target-macs",
                "0.5",
                "--name",
                "pruned",
            ]
        )
        == 0
    )
    assert _main(["export", str(root / "pruned"), "--out", str(root / "export"), "--repeats", "1"]) == 0
    return root


def _json(path):
    return json.loads(Path(path).read_text())


def test_export_report_summary_and_events(pipeline):
    report = _json(pipeline / "export" / "export.json")
    assert sorted(p.name for p in (pipeline / "export").iterdir()) == ["export.json", "model.pt2", "pruned.pt"]
    assert report["max_abs_diff_vs_masked"] <= 1e-4 and report["note"] is None and report["filters_removed"] > 0
    for key in ("params", "macs"):
        assert report["pruned"][key] < report["dense"][key]
    assert report["pruned"]["macs"] <= 0.5 * report["dense"]["macs"]
    assert report["program"] == "dynamic batch"
    summary = _json(pipeline / "pruned" / "summary.json")
    comp = summary["compression"]
    assert 0 <= comp["test_acc_before"] <= 1 and 0 <= comp["test_acc_after"] <= 1
    assert comp["keep"]["macs"] <= 0.5 and 0 < comp["keep"]["params"] < 1 and 0 < comp["keep"]["filters"] < 1
    assert {k: comp["pruned"][k] for k in ("params", "macs")} == report["pruned"]  # cost model = cut model
    assert {k: comp["dense"][k] for k in ("params", "macs")} == report["dense"]
    events = [json.loads(line) for line in (pipeline / "pruned" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["drop"]
    drop = events[0]
    assert drop["keep"] == 0.5 and drop["metric"] == "macs" and drop["counts"] == comp["pruned"]
    assert drop["test_acc_before"] == comp["test_acc_before"] and drop["test_acc_after"] == comp["test_acc_after"]
    assert "compression" not in _json(pipeline / "base" / "summary.json")  # a standard run has none


BLOCKED_RUNNER = """
import sys
for name in ("prunekit", "prunekit_plugins", "torch_pruning", "timm"):
    sys.modules[name] = None
import torch
for name in ("prunekit", "prunekit_plugins", "torch_pruning", "timm"):
    try:
        __import__(name)
    except ImportError:
        pass
    else:
        raise SystemExit(f"{name} was importable")
program = torch.export.load(sys.argv[1]).module()
inputs = torch.load(sys.argv[2])
torch.save([program(x) for x in inputs], sys.argv[3])
"""


def test_model_pt2_runs_in_plain_torch_and_matches_the_masked_model(pipeline, tmp_path):
    from prunekit.export import apply_pruned, read_pruned

    inputs = [torch.randn(b, 3, SIZE, SIZE) for b in (1, 3)]
    torch.save(inputs, tmp_path / "in.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKED_RUNNER,
            str(pipeline / "export" / "model.pt2"),
            str(tmp_path / "in.pt"),
            str(tmp_path / "out.pt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = torch.load(tmp_path / "out.pt")
    masked = _build("c3_32")  # the prune run's last weights, held filters at zero
    masked.load_state_dict(torch.load(pipeline / "pruned" / "checkpoint.pt", weights_only=True)["model"])
    reloaded = apply_pruned(_build("c3_32"), read_pruned(pipeline / "export"), torch.zeros(1, 3, SIZE, SIZE))
    assert count_params(reloaded) == _json(pipeline / "export" / "export.json")["pruned"]["params"]
    with torch.no_grad():
        for x, y in zip(inputs, outputs):
            assert y.shape == (len(x), 10)
            assert (y - masked.eval()(x)).abs().max() <= 1e-4
            assert (y - reloaded.eval()(x)).abs().max() <= 1e-5


def test_a_run_from_an_export_trains_the_smaller_model(pipeline, capsys):
    code, _, err = run_cli(
        [
            "run",
            "--method",
            "standard",
            "--epochs",
            "1",
            "--init-from",
            str(pipeline / "export"),
            "--out",
            str(pipeline),
            "--name",
            "from_export",
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    summary = _json(pipeline / "from_export" / "summary.json")
    assert summary["params"] == _json(pipeline / "export" / "export.json")["pruned"]["params"]
    assert summary["final_test_acc"] is not None


# --------------------------------------------------------------------------- 5. bad input
def _one_line_failure(code, err, *words):
    assert code != 0 and "Traceback" not in err and err.strip().count("\n") == 0, err
    flat = err.replace("\n", " ")
    assert all(w in flat for w in words), err


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_into_an_existing_folder_needs_overwrite(pipeline, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    (out / "sub").mkdir()
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = _snapshot(out)
    code, _, err = run_cli(["export", str(pipeline / "pruned"), "--out", str(out), "--repeats", "1"], capsys)
    _one_line_failure(code, err, "already exists", "--overwrite")
    assert _snapshot(out) == before
    code, _, err = run_cli(
        ["export", str(pipeline / "pruned"), "--out", str(out), "--repeats", "1", "--overwrite"], capsys
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "model.pt2", "pruned.pt"]
    assert _json(out / "export.json")["pruned"] == _json(pipeline / "export" / "export.json")["pruned"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".taken.")]  # no temp or replaced folder left


def test_export_of_a_run_without_held_filters_writes_the_dense_model(pipeline, tmp_path, capsys):
    code, _, err = run_cli(
        ["export", str(pipeline / "base"), "--out", str(tmp_path / "dense"), "--repeats", "1"], capsys
    )
    assert code == 0, err
    report = _json(tmp_path / "dense" / "export.json")
    assert report["filters_removed"] == 0 and report["pruned"] == report["dense"]
    assert "no dropped filters" in report["note"] and "dense model" in report["note"]
    assert "dense model" in err.replace("\n", " ")  # the note is shown


def test_a_failed_export_leaves_no_half_written_folder(pipeline, tmp_path, monkeypatch):
    import prunekit.export as export

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "export_program", broken)
    out = tmp_path / "new"
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_run(pipeline / "pruned", out, repeats=1, log=lambda *a: None)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    old = tmp_path / "old"  # a failed --overwrite leaves the export it would have replaced as it was
    old.mkdir()
    (old / "export.json").write_text("{}")
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_run(pipeline / "pruned", old, overwrite=True, repeats=1, log=lambda *a: None)
    assert _snapshot(old) == {"export.json": b"{}"} and [p.name for p in tmp_path.iterdir()] == ["old"]


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--target-macs", "1.5"], ["--target-macs must be in (0, 1)", "got 1.5"]),
        (["--target-macs", "0.5", "--target-params", "0.5"], ["one of --target-macs and --target-params"]),
        (["--target-macs", "0.01", "--max-layer-fraction", "0.5"], ["cannot keep only 0.01", "keeps at least"]),
        (["--init-from", "/nonexistent"], ["--init-from /nonexistent: no such file or folder"]),
        (["--pretrained"], ["model c3_32 has no published weights"]),
        (
            ["--pretrained", "/nonexistent.pth", "--model", "timm:test_resnet"],
            ["--pretrained /nonexistent.pth: no such file"],
        ),
    ],
)
def test_bad_compression_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, words):
    code, _, err = run_cli(
        ["run", "--method", "prune-l2", "--epochs", "1", "--out", str(tmp_path), "--name", "r", *FAST, *extra], capsys
    )
    _one_line_failure(code, err, *words)
    assert not (tmp_path / "r").exists()


def test_init_from_weights_of_another_architecture_is_one_line(tmp_path, capsys):
    torch.save(_build("c2_8").state_dict(), tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    for path, words in [
        (tmp_path / "other.pt", ["do not fit model c3_32"]),
        (tmp_path / "junk.pt", ["cannot read weights from"]),
    ]:
        code, _, err = run_cli(
            [
                "run",
                "--method",
                "standard",
                "--epochs",
                "1",
                "--init-from",
                str(path),
                "--out",
                str(tmp_path),
                "--name",
                "r",
                *FAST,
            ],
            capsys,
        )
        _one_line_failure(code, err, *words)
        assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- 6. starting weights
def test_init_from_a_state_dict_file_or_a_run_folder_sets_the_epoch_0_weights(pipeline, tmp_path):
    from prunekit.config import resolve
    from prunekit.engine import Run
    from prunekit.weights import init_from

    torch.manual_seed(5)
    source = _build("c3_32")
    state = {k: v.clone() for k, v in source.state_dict().items()}
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pt")  # a checkpoint that wraps it
    base = torch.load(pipeline / "base" / "checkpoint.pt", weights_only=True)["model"]
    example = torch.zeros(1, 3, SIZE, SIZE)
    for path, expected in [(tmp_path / "plain.pt", state), (tmp_path / "wrapped.pt", state), (pipeline / "base", base)]:
        cfg = resolve(
            {
                "method": "standard",
                "model": "c3_32",
                "dataset": "synthetic",
                "epochs": 1,
                "init_from": str(path),
                "out": str(tmp_path),
                "name": "r",
            }
        )
        torch.manual_seed(0)
        fresh = _build("c3_32")
        assert not torch.equal(fresh.features[0].weight, expected["features.0.weight"])
        loaded = init_from(fresh, cfg, example).state_dict()
        assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], expected[k]) for k in expected)
        run = Run(cfg)  # the engine's model before its first epoch
        assert all(torch.equal(run.model.state_dict()[k], expected[k]) for k in expected)
    assert not (tmp_path / "r").exists()


def test_export_of_a_finished_run_without_its_checkpoint_names_how_to_train_it_again(pipeline, tmp_path, capsys):
    copy = tmp_path / "base"  # a finished run as git keeps it: records, no checkpoint
    shutil.copytree(pipeline / "base", copy, ignore=shutil.ignore_patterns("checkpoint.pt"))
    code, _, err = run_cli(["export", str(copy), "--out", str(tmp_path / "export")], capsys)
    _one_line_failure(code, err, "checkpoint.pt is gone (not kept in git)", f"--out {tmp_path} --name base --overwrite")
    assert not (tmp_path / "export").exists()
