"""The registry (prunekit.registry): `prunekit list`, a plugin that fails to load, and third-party
rankers registered by name."""

import json

import torch
from helpers import run_cli

from prunekit import Ranker, registry
from prunekit.cli import _describe as cli_describe
from prunekit.config import resolve
from prunekit.engine import start_run


def test_list_shows_packages_and_survives_a_broken_plugin(capsys, monkeypatch):
    class BrokenEP:
        value = "nowhere:thing"

        def load(self):
            raise ImportError("no module named nowhere")

    reg = registry.REGISTRY
    reg.discover()
    monkeypatch.setitem(
        reg.entries["rankers"],
        "broken",
        registry._EntryPointEntry("broken", "rankers", "nowhere:thing", "thirdparty-pkg", ep=BrokenEP()),
    )
    code, out, err = run_cli(["list"], capsys)
    assert code == 0, err
    assert "broken" in out and "thirdparty-pkg" in out and "no module named nowhere" in out
    assert "orthogonality" in out and "prunekit" in out and "nullspace" in out
    code, _, err = run_cli(["run", "--method", "repr", "--ranker", "broken"], capsys)
    assert code == 2 and "failed to load" in err and "thirdparty-pkg" in err


def test_list_describes_every_entry_and_names_an_example_of_each_family(capsys):
    code, out, err = run_cli(["list"], capsys)
    assert code == 0, err
    for kind in registry.KINDS:
        for entry in registry.REGISTRY.report(kind):
            assert cli_describe(entry.load(), False), f"{kind} {entry.name} has no description"
    flat = " ".join(out.split())
    for example in ("family, e.g. c3_32:", "family, e.g. timm:resnet18:", "family, e.g. folder:/data/imagenet:"):
        assert example in flat


def test_list_models_pattern(capsys):
    code, out, _ = run_cli(["list", "--models", "timm:resnet1*"], capsys)
    assert code == 0 and "timm:resnet18" in out.split()
    code, out, _ = run_cli(["list", "--models", "c*"], capsys)
    assert "c3_32" in out.split() and not any("*" in name for name in out.split())  # names, not the provider's pattern


def test_a_third_party_ranker_plugs_into_the_repr_cycle(tmp_path, monkeypatch):
    computed = []

    class MaxAbs(Ranker):
        def scores(self, ctx):
            out = [sum(ctx.filter_rows(g, n).abs().amax(1).cpu() for n in g.filters) for g in ctx.groups]
            computed.append(out)
            return out

    reg = registry.REGISTRY
    reg.discover()
    monkeypatch.setitem(
        reg.entries["rankers"], "maxabs", registry._ObjectEntry("maxabs", "rankers", "MaxAbs", "mypkg", obj=MaxAbs)
    )
    cfg = resolve(
        {
            "method": "repr",
            "ranker": "maxabs",
            "dataset": "synthetic",
            "model": "c2_8",
            "epochs": 3,
            "s1": 1,
            "s2": 1,
            "batch_size": 64,
            "out": str(tmp_path),
            "scope": "layer",
        }
    )
    start_run(cfg)
    events = [json.loads(x) for x in (tmp_path / cfg.run_name / "events.jsonl").read_text().splitlines()]
    assert [len(v) for v in events[0]["dropped"].values()] == [2, 2]  # 30 % of 8 per layer
    assert len(computed) == 1  # one drop, ranked by the plugin, whose scores the record keeps
    for g, name in enumerate(events[0]["order"]):
        recorded = torch.tensor(events[0]["scores"][name], dtype=torch.float64)
        assert torch.allclose(recorded, computed[0][g].double())
        assert set(events[0]["dropped"][name]) == set(torch.argsort(recorded)[:2].tolist())  # the lowest go


def test_a_ranker_with_its_own_select_is_honoured(tmp_path, monkeypatch):
    class FirstTwo(Ranker):
        """Always drops channels 0 and 1 of every group, whatever the scores say."""

        def scores(self, ctx):
            return [torch.zeros(g.size) for g in ctx.groups]

        def select(self, ctx, ratio):
            picks = [torch.zeros(g.size, dtype=torch.bool) for g in ctx.groups]
            for p in picks:
                p[:2] = True
            return picks

    reg = registry.REGISTRY
    reg.discover()
    monkeypatch.setitem(
        reg.entries["rankers"],
        "firsttwo",
        registry._ObjectEntry("firsttwo", "rankers", "FirstTwo", "mypkg", obj=FirstTwo),
    )
    cfg = resolve(
        {
            "method": "repr",
            "ranker": "firsttwo",
            "dataset": "synthetic",
            "model": "c2_8",
            "epochs": 3,
            "s1": 1,
            "s2": 1,
            "batch_size": 64,
            "out": str(tmp_path),
        }
    )
    start_run(cfg)
    events = [json.loads(x) for x in (tmp_path / cfg.run_name / "events.jsonl").read_text().splitlines()]
    assert list(events[0]["dropped"].values()) == [[0, 1], [0, 1]] and events[0]["scores"] is None
