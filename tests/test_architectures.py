"""One RePr drop / hold / restore cycle on real architectures (timm and CIFAR ResNets)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunekit import registry
from prunekit.groups import build_groups
from prunekit.interfaces import RankContext, ReinitContext
from prunekit.masks import FilterMasks, clear_optimizer_state

ARCHS = [
    "resnet20",                      # CIFAR ResNet, projection shortcuts
    "timm:resnet18",                 # plain residual ResNet
    "timm:resnet26",                 # bottleneck ResNet
    "timm:mobilenetv3_small_050",    # depthwise + squeeze-excite + hard-swish
    "timm:efficientnet_b0",          # depthwise + SE, inverted residuals
    "timm:regnetx_002",              # grouped convs
    "timm:convnext_atto",            # LayerNorm, Linear MLP, layer scale
    "timm:repvgg_a0",                # VGG-style (train-time branches)
    "timm:densenet121",              # concatenation
]


def _norm_outputs(model, groups):
    """Forward hooks on every norm layer that owns a group channel (the 'after BN' view)."""
    owners = {}
    for gi, g in enumerate(groups):
        for s in g.slices:
            if s.role == "owner" and s.name.endswith(".weight") and s.kind.lower().find("norm") >= 0:
                owners.setdefault(s.module, []).append((gi, s))
    seen, handles = {}, []
    for name, entries in owners.items():
        mod = model.get_submodule(name)
        handles.append(mod.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o)))
    return owners, seen, handles


@pytest.mark.parametrize("arch", ARCHS)
def test_one_repr_cycle(arch):
    torch.manual_seed(0)
    size = 32
    model = registry.get("models", arch)(num_classes=10, in_channels=3, image_size=size)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    groups = build_groups(model, torch.zeros(1, 3, size, size))
    assert len(groups) > 0, groups.excluded
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(4, 3, size, size), torch.randint(0, 10, (4,))
    ranker = registry.get("rankers", "orthogonality").build("orthogonality")
    masks = FilterMasks(model, groups)
    ctx = RankContext(model, groups, [d.clone() for d in masks.dropped], torch.Generator().manual_seed(0),
                      lambda n: iter(()), F.cross_entropy, torch.device("cpu"))
    picks = ranker.select(ctx, 0.3)
    assert sum(int(p.sum()) for p in picks) > 0
    masks.drop(picks, opt)
    owners, seen, handles = _norm_outputs(model, groups)
    model.train()
    for _ in range(2):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        masks.hold(opt)
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert torch.isfinite(out).all()
    checked = 0
    for name, entries in owners.items():
        o = seen[name]
        for gi, s in entries:
            pos = s.positions(picks[gi])
            if len(pos):
                dim = 1 if o.dim() == 4 and o.shape[1] == model.get_submodule(name).weight.shape[0] else -1
                assert torch.count_nonzero(o.index_select(dim, pos)) == 0, (name, pos[:5])
                checked += 1
    for h in handles:
        h.remove()
    if owners:
        assert checked > 0
    # restore with null-space re-init, then one more step
    reinit = registry.get("reinitializers", "nullspace").build("nullspace")
    rctx = ReinitContext(model, groups, [d.clone() for d in masks.dropped], masks.before_drop, torch.Generator().manual_seed(1))
    with torch.no_grad():
        reinit.reinit(rctx)
    exact = 0  # returning filters are live again, and orthogonal to the survivors where the null space had room
    for g, (group, ret) in enumerate(zip(groups, rctx.returning)):
        for name in group.filters if ret.any() else ():
            sl = next(s for s in group.slices if s.name == name and s.role == "owner")
            w = model.get_parameter(name).detach()
            rows = w.movedim(sl.dim, 0).reshape(w.shape[sl.dim], -1)[sl.index]
            back = ret[sl.channel]
            assert (rows[back].abs().sum(1) > 0).all(), name
            if any(line.startswith(f"{group.name} {name}: null space (") for line in rctx.log):
                unit = F.normalize(rows.double(), dim=1)
                assert (unit[back] @ unit[~back].T).abs().max() < 1e-4, name
                exact += 1
    assert exact > 0, rctx.log
    for g, ret in zip(groups, rctx.returning):
        clear_optimizer_state(opt, model, g.slices, ret)
    masks.release()
    model.train()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes


def test_unsupported_layers_are_reported_by_name():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.odd = nn.GRUCell(8, 8)  # consumes conv channels through a layer we cannot map
            self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
            self.fc = nn.Linear(12, 2)

        def forward(self, x):
            a = self.conv(x).mean((2, 3))
            b = self.conv2(x).mean((2, 3))
            return self.fc(torch.cat([self.odd(a), b], 1))

    groups = build_groups(Odd(), torch.zeros(1, 3, 8, 8))
    assert any("odd" in u for u in groups.unsupported)
    assert any(e.startswith("conv:") for e in groups.excluded)
    assert [g.name for g in groups] == ["conv2"]
