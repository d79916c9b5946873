"""RePr plugin: orthogonality ranking, selection, null-space re-init, next-layer init, schedule."""

import math

import pytest
import torch
import torch.nn as nn

from prunekit import Drop, Restore
from prunekit.groups import build_groups
from prunekit.interfaces import RankContext
from prunekit.models import c3_32
from prunekit.pruner import Pruner
from prunekit.selection import select_lowest
from prunekit_plugins.baselines import DefaultInit, KeepInit
from prunekit_plugins.repr import NullSpace, Orthogonality, RePrSchedule, ReverseOrthogonality, orthogonality


def test_orthonormal_filters_score_zero():
    q, _ = torch.linalg.qr(torch.randn(20, 20, dtype=torch.float64))
    rows = q[:8].float() * torch.linspace(0.5, 3, 8)[:, None]  # norms must not matter
    assert orthogonality(rows).abs().max() < 1e-6


def test_duplicated_filter_scores_k_minus_1_over_j():
    q, _ = torch.linalg.qr(torch.randn(16, 16, dtype=torch.float64))
    base = q[:6].float()
    k = 3
    rows = torch.cat([base[:1].repeat(k, 1) * torch.tensor([[1.0], [2.0], [0.5]]), base[1:]])  # J = 8
    o = orthogonality(rows)
    j = rows.shape[0]
    assert torch.allclose(o[:k], torch.full((k,), (k - 1) / j), atol=1e-6)
    assert torch.allclose(o[k:], torch.zeros(j - k), atol=1e-6)


def test_hand_computed_layer():
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    c = 1 / math.sqrt(2)  # |cos| of rows 0/1 and 1/2; rows 0/2 orthogonal
    expected = torch.tensor([c, 2 * c, c]) / 3
    assert torch.allclose(orthogonality(w), expected, atol=1e-6)
    # the author's layer normalisation: W/||W||_F, zero diagonal, |signed row mean|
    u = w / w.norm()
    g = u @ u.T
    g.fill_diagonal_(0)
    assert torch.allclose(orthogonality(w, "layer"), g.mean(1).abs(), atol=1e-6)


def _ctx(model, groups, dropped=None):
    dropped = dropped or [torch.zeros(g.size, dtype=torch.bool) for g in groups]
    return RankContext(
        model,
        groups,
        dropped,
        torch.Generator().manual_seed(0),
        lambda n: iter(()),
        torch.nn.functional.cross_entropy,
        torch.device("cpu"),
    )


def test_ranking_of_a_hand_made_layer_drops_the_duplicates():
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    with torch.no_grad():
        w = model.features[2].weight  # 32 filters of K = 288
        q, _ = torch.linalg.qr(torch.randn(288, 288))
        w.copy_(q[:, :32].T.reshape(32, 32, 3, 3))
        w[[4, 9, 17]] = w[3] * torch.tensor([1.0, -2.0, 0.5])[:, None, None, None]
    ranker = Orthogonality.build("t", scope="layer")
    picks = ranker.select(_ctx(model, groups), 4 / 32)
    assert set(picks[1].nonzero().flatten().tolist()) == {3, 4, 9, 17}
    reverse = ReverseOrthogonality.build("t", scope="layer")
    assert not (reverse.select(_ctx(model, groups), 4 / 32)[1][[3, 4, 9, 17]]).any()


def test_global_scope_layer_scope_and_cap():
    scores = [torch.tensor([0.0, 0.1, 0.2, 0.3]), torch.tensor([5.0, 6.0, 7.0, 8.0])]
    dropped = [torch.zeros(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool)]
    picks = select_lowest(scores, dropped, 0.25, scope="global")
    assert picks[0].tolist() == [True, True, False, False] and not picks[1].any()
    picks = select_lowest(scores, dropped, 0.25, scope="layer")
    assert picks[0].sum() == 1 and picks[1].sum() == 1 and picks[1][0]
    capped = select_lowest(scores, dropped, 0.5, scope="global", max_layer_fraction=0.5)
    assert capped[0].sum() == 2 and capped[1].sum() == 2  # the cap pushed the rest to layer 2
    full = select_lowest(scores, dropped, 0.5, scope="global", max_layer_fraction=1.0)
    assert full[0].sum() == 3  # never the whole layer
    held = [torch.tensor([True, False, False, False]), torch.zeros(4, dtype=torch.bool)]
    assert not select_lowest(scores, held, 0.25)[0][0]


def _drop_and_reinit(model, groups, picks, reinit, opt=None, example=None):
    """Hold the hand-picked channels ``picks`` at zero, then restore them with ``reinit`` (``Pruner.restore``):
    the restore record (its ``log``)."""
    pruner = Pruner(model, torch.zeros(1, 3, 8, 8) if example is None else example, reinitializer=reinit, groups=groups)
    pruner.masks.drop(picks, opt)
    return pruner.restore(opt, torch.Generator().manual_seed(3))


def _reinit_conv2(returning, reinit):
    """Drop ``returning`` filters of c3_32's conv2, re-init them with ``reinit``:
    (model, old rows, new rows, restore record)."""
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    old = model.features[2].weight.detach().clone().flatten(1)
    picks = [torch.zeros(32, dtype=torch.bool) for _ in groups]
    picks[1][returning] = True
    record = _drop_and_reinit(model, groups, picks, reinit)
    return model, old, model.features[2].weight.detach().flatten(1), record


def test_nullspace_filters_are_orthogonal_to_survivors_and_old_values():
    ret = torch.zeros(32, dtype=torch.bool)
    ret[[2, 7, 11, 30]] = True
    _, old, new, record = _reinit_conv2(ret, NullSpace.build("t"))
    constraints = torch.cat([old[~ret], old[ret]])
    cos = torch.nn.functional.normalize(new[ret], dim=1) @ torch.nn.functional.normalize(constraints, dim=1).T
    assert cos.abs().max() < 1e-5
    assert torch.equal(new[~ret], old[~ret])  # survivors untouched
    unit = torch.nn.functional.normalize(new[ret].double(), dim=1)
    assert torch.allclose(unit @ unit.T, torch.eye(4, dtype=torch.float64), atol=1e-5)  # mutually orthogonal
    # norm-match: returning filters have the survivors' mean norm
    assert torch.allclose(new[ret].norm(dim=1), old[~ret].norm(dim=1).mean().expand(4), rtol=1e-4)
    assert any("features.2" in line and "null space" in line for line in record["log"])


def test_clipped_nullspace_filters_stay_in_the_null_space_within_the_default_bound():
    from prunekit.reinit import default_bound

    ret = torch.arange(0, 32, 3)  # 11 returning filters
    model, old, new, _ = _reinit_conv2(ret, NullSpace.build("t", scale="clip"))
    new = new[ret]
    assert new.abs().max() <= default_bound(model.features[2]) * (1 + 1e-6)
    unit = torch.nn.functional.normalize(new, dim=1)
    assert (unit @ torch.nn.functional.normalize(old, dim=1).T).abs().max() < 1e-5  # survivors and old values
    assert (unit @ unit.T - torch.eye(len(new))).abs().max() < 1e-5


def test_null_space_sample_with_dependent_constraints():
    from prunekit_plugins.repr import null_space_sample

    g = torch.Generator().manual_seed(0)
    base = torch.randn(5, 40, generator=g, dtype=torch.float64)
    constraints = torch.cat([base, base[:3] * 2.0, torch.zeros(1, 40, dtype=torch.float64)])  # rank 5 of 9 rows
    rows, how = null_space_sample(constraints, 6, g)
    assert rows.shape == (6, 40) and how.startswith("null space")
    assert (rows @ base.T).abs().max() < 1e-10
    assert torch.allclose(rows @ rows.T, torch.eye(6, dtype=torch.float64), atol=1e-10)
    again, _ = null_space_sample(constraints, 6, torch.Generator().manual_seed(1))
    assert not torch.allclose(rows.abs(), again.abs())  # random combinations, not a fixed basis


def test_first_layer_of_c3_32_relaxes_then_falls_back():
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))  # first layer: 32 filters in 27 dimensions
    picks = [torch.zeros(32, dtype=torch.bool) for _ in groups]
    picks[0][:10] = True
    old = model.features[0].weight.detach().clone().flatten(1)
    record = _drop_and_reinit(model, groups, picks, NullSpace.build("t"))
    assert any(line.startswith("features.0") and "relaxed" in line for line in record["log"]), record["log"]
    new = model.features[0].weight.detach().flatten(1)[:10]
    # 22 survivors + 10 old values = 32 constraints in K = 27; room for 10 leaves the 17 most-overlapping
    constraints = torch.cat([old[10:], old[:10]])
    kept = constraints[torch.argsort(orthogonality(constraints), descending=True)[:17]]
    unit = torch.nn.functional.normalize
    assert (unit(new, dim=1) @ unit(kept, dim=1).T).abs().max() < 1e-5
    assert (unit(new, dim=1) @ unit(constraints, dim=1).T).abs().max() > 1e-2  # not orthogonal to all 32: cannot be
    assert "17 most-overlapping" in " ".join(record["log"])
    picks[0][:] = True
    picks[0][:3] = False  # 29 returning filters: K - 29 < 1, no room at all
    old = model.features[0].weight.detach().clone()
    record = _drop_and_reinit(model, groups, picks, NullSpace.build("t"))
    assert any(line.startswith("features.0") and "default init" in line for line in record["log"]), record["log"]
    new = model.features[0].weight.detach()[3:]
    assert not torch.equal(new, old[3:]) and torch.count_nonzero(new) == new.numel()
    assert new.abs().max() <= 1 / math.sqrt(27)  # PyTorch's default bound for fan-in 27


@pytest.mark.parametrize("mode", ["zero", "random"])
def test_next_layer_init_touches_exactly_the_consumer_slices(mode):
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    picks = [torch.zeros(32, dtype=torch.bool) for _ in groups]
    picks[1][[1, 5]] = True
    picks[2][[0, 31]] = True
    _drop_and_reinit(model, groups, picks, NullSpace.build("t", next_layer=mode))
    after = model.state_dict()
    conv_cols = [1, 5]
    lin_cols = list(range(0, 64)) + list(range(31 * 64, 32 * 64))  # 8×8 maps: 64 Linear inputs per channel
    for name, cols in (("features.4.weight", conv_cols), ("classifier.weight", lin_cols)):
        # rows 0 and 31 of features.4 are returning filters themselves (re-initialized whole)
        rows = torch.ones(after[name].shape[0], dtype=torch.bool)
        if name == "features.4.weight":
            rows[[0, 31]] = False
        new, old = after[name][rows][:, cols], before[name][rows][:, cols]
        if mode == "zero":
            assert torch.count_nonzero(new) == 0
        else:
            assert (new != old).float().mean() > 0.99  # really rewritten (not a silent no-op)
            bound = 1 / math.sqrt(32 * 9 if name.startswith("features") else 32 * 64)
            assert new.abs().max() <= bound
        others = torch.ones(after[name].shape[1], dtype=torch.bool)
        others[cols] = False
        assert torch.equal(before[name][rows][:, others], after[name][rows][:, others])
    assert torch.equal(before["features.0.weight"], after["features.0.weight"])


def test_keep_restores_values_and_default_reinitializes():
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    before = model.features[2].weight.detach().clone()
    picks = [torch.zeros(32, dtype=torch.bool) for _ in groups]
    picks[1][[4, 8]] = True
    _drop_and_reinit(model, groups, picks, KeepInit.build("t"))
    assert torch.equal(model.features[2].weight, before)
    _drop_and_reinit(model, groups, picks, DefaultInit.build("t"))
    after = model.features[2].weight.detach()
    assert not torch.equal(after[[4, 8]], before[[4, 8]]) and torch.count_nonzero(after[[4, 8]]) > 0
    assert after[[4, 8]].abs().max() <= 1 / math.sqrt(288)


def test_default_init_is_the_models_own_where_it_declares_one():
    """prunekit's ResNets draw convs He-normal (fan-out); returning filters, and with next_layer=random
    their consumers' input columns, are drawn the same way, not from PyTorch's 2.4x narrower default."""
    from prunekit.models.resnet_cifar import resnet20

    torch.manual_seed(0)
    model = resnet20()
    groups = build_groups(model, torch.zeros(1, 3, 32, 32))
    g = next(i for i, grp in enumerate(groups) if grp.name == "layers.3.conv1")  # 16 -> 32, 3x3; feeds layers.3.conv2
    picks = [torch.zeros(grp.size, dtype=torch.bool) for grp in groups]
    picks[g][::2] = True
    _drop_and_reinit(
        model, groups, picks, DefaultInit.build("t", next_layer="random"), example=torch.zeros(1, 3, 32, 32)
    )
    # fan-out 32 * 9 for both weights: std 0.083 (fan-in would give 0.118 for the rows; PyTorch's default 0.048)
    he_std = math.sqrt(2 / (32 * 9))
    rows = model.layers[3].conv1.weight.detach()[picks[g]]
    columns = model.layers[3].conv2.weight.detach()[:, picks[g]]
    for values in (rows, columns):  # 2,304 and 4,608 draws: the sample std is within ~3 % of the truth
        assert abs(values.std().item() / he_std - 1) < 0.1 and values.abs().max() > 1 / math.sqrt(144)


def test_a_declared_init_gives_each_returning_filter_the_values_of_its_own_position():
    """An init may depend on the position (identity-like ``dirac_``): filter 2 comes back as filter 2 of a
    fresh weight, not as filter 0."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
            self.head = nn.Linear(4, 10)
            self.prunekit_init(self.conv, self.conv.weight, None)

        @staticmethod
        @torch.no_grad()
        def prunekit_init(module, weight, generator):
            if module.kernel_size == (3, 3) and module.in_channels == 4:
                nn.init.dirac_(weight)
                return True
            return False

        def forward(self, x):
            return self.head(self.conv(torch.relu(self.stem(x))).mean((2, 3)))

    torch.manual_seed(0)
    model = Net()
    fresh = model.conv.weight.detach().clone()
    with torch.no_grad():
        model.conv.weight.normal_()  # trained away from the identity
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    g = next(i for i, grp in enumerate(groups) if grp.name == "conv")
    picks = [torch.zeros(grp.size, dtype=torch.bool) for grp in groups]
    picks[g][[1, 2]] = True
    _drop_and_reinit(model, groups, picks, DefaultInit.build("t"))
    assert torch.equal(model.conv.weight.detach()[[1, 2]], fresh[[1, 2]])


def test_repr_schedule_events():
    s = RePrSchedule.build("t", s1=20, s2=10, prune_ratio=0.3)
    timeline = s.timeline(100)
    assert [(e, type(ev).__name__) for e, ev in timeline] == [
        (20, "Drop"),
        (30, "Restore"),
        (50, "Drop"),
        (60, "Restore"),
        (80, "Drop"),
        (90, "Restore"),
    ]
    assert timeline[0][1] == Drop(0.3) and timeline[1][1] == Restore()
    assert len(RePrSchedule.build("t", s1=2, s2=1, cycles=2).timeline(20)) == 4
    assert [e for e, _ in RePrSchedule.build("t", s1=2, s2=1).timeline(7)] == [2, 3, 5, 6]
    from prunekit.errors import PrunekitError

    with pytest.raises(PrunekitError, match="no room"):
        RePrSchedule.build("t", s1=20, s2=10).validate(30)
    with pytest.raises(PrunekitError, match=r"cycles=5 .*\(room for 3\)"):  # not quietly cut to the 3 that fit
        RePrSchedule.build("t", s1=20, s2=10, cycles=5).validate(100)
    RePrSchedule.build("t", s1=20, s2=10, cycles=3).validate(100)
    for bad in ({"prune_ratio": 0.0}, {"prune_ratio": 1.0}, {"s1": 0}, {"s2": -1}, {"cycles": 0}):
        with pytest.raises(PrunekitError):
            RePrSchedule.build("t", **bad)


def test_zero_reinit_keeps_bn_alive_and_layer_scales_come_back():
    from prunekit_plugins.baselines import ZeroInit

    torch.manual_seed(0)

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.bn = torch.nn.BatchNorm2d(4)
            self.gamma = torch.nn.Parameter(torch.full((4,), 0.5))
            self.conv2 = torch.nn.Conv2d(4, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            x = self.bn(self.conv(x)) * self.gamma.view(1, -1, 1, 1)
            return self.fc(self.conv2(torch.relu(x)).mean((2, 3)))

    model = Scaled()
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    g = next(i for i, gr in enumerate(groups) if gr.name == "conv")
    assert "gamma" in {s.name for s in groups[g].slices}
    picks = [torch.zeros(gr.size, dtype=torch.bool) for gr in groups]
    picks[g][[1, 2]] = True
    consumer_before = model.conv2.weight.detach().clone()
    _drop_and_reinit(model, groups, picks, ZeroInit.build("t"))
    assert torch.count_nonzero(model.conv.weight[[1, 2]]) == 0
    assert torch.equal(model.bn.weight[[1, 2]], torch.ones(2))  # norm layers get their defaults
    assert torch.equal(model.gamma.detach()[[1, 2]], torch.full((2,), 0.5))  # layer scale: its old value
    columns = model.conv2.weight.detach()[:, [1, 2]]  # consumers: fresh random inputs by default
    assert torch.count_nonzero(columns) == columns.numel() and not torch.equal(columns, consumer_before[:, [1, 2]])
    assert columns.abs().max() <= 1 / math.sqrt(4 * 9)
    assert torch.equal(model.conv2.weight[:, [0, 3]], consumer_before[:, [0, 3]])


def test_blocked_orthogonality_of_a_large_layer_matches_the_dense_formula():
    from prunekit_plugins.repr import orthogonality

    w = torch.randn(1100, 64, generator=torch.Generator().manual_seed(0))  # three row blocks of 512
    w[7] = 0.0  # an all-zero filter: |0 - 1| on its diagonal
    w[900] = w[3]  # a duplicate across blocks
    unit = torch.nn.functional.normalize(w, dim=1)
    gram = unit @ unit.T
    gram.diagonal().sub_(1.0)
    assert torch.allclose(orthogonality(w), gram.abs().sum(1) / 1100, atol=1e-6)
