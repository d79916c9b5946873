"""Filter groups come from the dependency graph with every slice a filter owns."""

import signal

import pytest
import torch
import torch.nn as nn

from prunekit.errors import PrunekitError
from prunekit.groups import build_groups
from prunekit.models import c3_32, resnet20


def _by_name(group):
    return {(s.name, s.role): s for s in group.slices}


def test_c3_32_groups_name_every_slice():
    model = c3_32()
    groups = build_groups(model, torch.zeros(1, 3, 32, 32))
    assert [g.name for g in groups] == ["features.0", "features.2", "features.4"]
    assert all(g.size == 32 for g in groups)
    first = _by_name(groups[0])
    assert set(first) == {
        ("features.0.weight", "owner"),
        ("features.0.bias", "owner"),
        ("features.2.weight", "consumer"),
    }
    assert first[("features.0.weight", "owner")].dim == 0
    assert first[("features.2.weight", "consumer")].dim == 1
    last = _by_name(groups[2])
    assert set(last) == {
        ("features.4.weight", "owner"),
        ("features.4.bias", "owner"),
        ("classifier.weight", "consumer"),
    }
    linear = last[("classifier.weight", "consumer")]
    assert linear.dim == 1 and len(linear.index) == 32 * 32 * 32
    # channel k of conv3 owns Linear inputs 1024k ... 1024k + 1023 (after the flatten)
    k = torch.zeros(32, dtype=torch.bool)
    k[5] = True
    assert linear.positions(k).tolist() == list(range(5 * 1024, 6 * 1024))
    assert groups[0].filters == ["features.0.weight"]


def test_resnet20_residual_channels_form_one_group():
    model = resnet20()
    groups = build_groups(model, torch.zeros(1, 3, 32, 32))
    stem = next(
        g for g in groups if g.name == "conv1" or "conv1.weight" in [s.name for s in g.slices if s.role == "owner"]
    )
    owners = {s.name for s in stem.slices if s.role == "owner"}
    consumers = {s.name for s in stem.slices if s.role == "consumer"}
    # the stem and every stage-1 block's second conv add into the same 16 channels
    assert {"conv1.weight", "bn1.weight", "bn1.bias"} <= owners
    for b in range(3):
        assert {f"layers.{b}.conv2.weight", f"layers.{b}.bn2.weight", f"layers.{b}.bn2.bias"} <= owners
        assert f"layers.{b}.conv1.weight" in consumers
    assert {"layers.3.conv1.weight", "layers.3.shortcut.0.weight"} <= consumers
    states = {s.name for s in stem.slices if s.role == "state"}
    assert {"bn1.running_mean", "bn1.running_var"} <= states
    # inner block convs are groups of their own, with their BN
    inner = next(g for g in groups if g.name == "layers.0.conv1")
    assert {s.name for s in inner.slices if s.role == "owner"} == {
        "layers.0.conv1.weight",
        "layers.0.bn1.weight",
        "layers.0.bn1.bias",
    }
    assert [s.name for s in inner.slices if s.role == "consumer"] == ["layers.0.conv2.weight"]
    # the last stage feeds the classifier, which is never an owner
    last = next(g for g in groups if "fc.weight" in {s.name for s in g.slices})
    assert all(s.role == "consumer" for s in last.slices if s.name == "fc.weight")
    assert not any(s.name.startswith("fc.") and s.role == "owner" for g in groups for s in g.slices)


def test_exclude_first_and_patterns():
    model = c3_32()
    groups = build_groups(model, torch.zeros(1, 3, 32, 32), exclude_first=True)
    assert [g.name for g in groups] == ["features.2", "features.4"]
    assert any("features.0" in e for e in groups.excluded)
    groups = build_groups(model, torch.zeros(1, 3, 32, 32), exclude=["features.4"])
    assert [g.name for g in groups] == ["features.0", "features.2"]
    # a pattern may name a BN module of the group, or a group that exclude_first leaves out anyway
    net = resnet20()
    spared = build_groups(net, torch.zeros(1, 3, 32, 32), exclude=["bn1", "layers.0.bn2"], exclude_first=True)
    assert spared.excluded and not any(
        s.module in {"bn1", "layers.0.bn2"} for g in spared for s in g.slices if s.role == "owner"
    )
    with pytest.raises(PrunekitError, match=r"exclude pattern\(s\) feature\.0 match no module .*features\.0"):
        build_groups(model, torch.zeros(1, 3, 32, 32), exclude=["features.4", "feature.0"])  # a typo, not a no-op


class _Endless(torch.nn.Module):
    """A block whose forward pass never ends (a stand-in for a model torch-pruning cannot trace in time)."""

    def forward(self, x):
        while True:  # in place: the loop holds its memory however long it runs
            x.add_(0)


def test_a_graph_that_takes_too_long_is_refused_naming_the_stage_and_module():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), _Endless())
    with pytest.raises(PrunekitError) as err:
        build_groups(model, torch.zeros(1, 3, 8, 8), timeout=0.5)
    message = str(err.value)
    assert "more than 0.5 s" in message and "tracing the forward pass" in message, message
    assert "last module run: 2" in message and "--graph-timeout" in message, message
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no alarm left behind


def test_a_timeout_that_is_not_reached_changes_nothing():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))
    bounded = build_groups(model, torch.zeros(1, 3, 8, 8), timeout=30)
    free = build_groups(model, torch.zeros(1, 3, 8, 8), timeout=None)
    assert [g.name for g in bounded] == [g.name for g in free] and [g.size for g in bounded] == [g.size for g in free]
    assert not model._forward_pre_hooks and not model[0]._forward_pre_hooks  # the progress hooks are gone


def test_a_failed_graph_build_says_whether_the_model_or_torch_pruning_failed(monkeypatch):
    import torch_pruning as tp

    class Fixed(nn.Module):  # runs on 8x8 inputs only
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 8 * 8, 2)

        def forward(self, x):
            if x.shape[-1] != 8:
                raise ValueError(f"needs 8x8 inputs, got {tuple(x.shape)}")
            return self.fc(torch.flatten(self.conv(x), 1))

    with pytest.raises(
        PrunekitError, match=r"Fixed cannot run on an input of shape \(1, 3, 16, 16\) \(needs 8x8 inputs"
    ):
        build_groups(Fixed(), torch.zeros(1, 3, 16, 16))

    def broken(self, model, example_inputs, **kw):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")

    monkeypatch.setattr(tp.DependencyGraph, "build_dependency", broken)
    with pytest.raises(
        PrunekitError,
        match=r"torch-pruning cannot build the dependency graph of Fixed .*"
        r"the model itself runs on \(1, 3, 8, 8\)",
    ):
        build_groups(Fixed(), torch.zeros(1, 3, 8, 8))


def test_the_per_layer_cap_holds_for_each_branch_of_a_concat_group():
    """Two convs concatenated and scaled channel-wise by a third (an SE-like gate) form one group of 8
    channels owned half by each branch: however the scores fall, no branch loses more than the cap
    of its own 4 filters, and the cut model exports."""
    from prunekit.pruner import Pruner
    from prunekit.selection import select_lowest

    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)
            self.gate = nn.Conv2d(8, 8, 1)
            self.head = nn.Conv2d(8, 2, 1)

        def forward(self, x):
            y = torch.cat([self.a(x), self.b(x)], 1)
            return self.head(y * torch.sigmoid(self.gate(y.mean((2, 3), keepdim=True)))).mean((2, 3))

    torch.manual_seed(0)
    model = Branches()
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    group = next(g for g in groups if g.size == 8)
    assert sorted(len(s) for s in group.segments) == [4, 4]
    scores = [torch.arange(g.size, dtype=torch.float) for g in groups]  # branch a's channels lowest
    picks = select_lowest(
        scores,
        [torch.zeros(g.size, dtype=torch.bool) for g in groups],
        0.9,
        "global",
        0.75,
        [g.segments for g in groups],
    )
    pick = picks[groups.groups.index(group)]
    for seg in group.segments:
        assert 1 <= int(pick[seg].sum()) <= 3  # at most floor(0.75 * 4), and never the whole branch
    pruner = Pruner(model, torch.zeros(1, 3, 8, 8), ranker="l2", groups=groups)
    pruner.drop(keep=0.3, metric="macs")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert float((model(x) - pruner.export()(x)).abs().max()) < 1e-5


def test_a_root_torch_pruning_cannot_group_in_time_is_left_unpruned_and_the_rest_is_grouped(monkeypatch):
    import torch_pruning as tp

    model = c3_32()
    slow_root = [m for m in model.modules() if isinstance(m, nn.Conv2d)][1]
    real = tp.DependencyGraph.get_pruning_group

    def stuck_on_one(self, module, fn, idxs):
        while module is slow_root:  # a stand-in for a group search that does not end (attention hybrids)
            signal.pause() if hasattr(signal, "pause") else None
        return real(self, module, fn, idxs)

    monkeypatch.setattr(tp.DependencyGraph, "get_pruning_group", stuck_on_one)
    groups = build_groups(model, torch.zeros(1, 3, 32, 32), timeout=4)
    assert [g.name for g in groups] == ["features.0", "features.4"]
    assert any(
        e.startswith("features.2: torch-pruning did not group it within the time bound") for e in groups.excluded
    )
