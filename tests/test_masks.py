"""A dropped filter stays exactly zero through training, whatever the optimizer."""

import pytest
import torch
import torch.nn.functional as F

from prunekit.groups import build_groups
from prunekit.masks import FilterMasks
from prunekit.models import c3_32

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd-momentum-wd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4),
    "sgd-nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05),
}


def _train(model, opt, masks, steps, size=8, hold=True):
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 3, size, size, generator=g)
        y = torch.randint(0, 10, (16,), generator=g)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hold:
            masks.hold(opt)


def _pick(groups, which):
    picks = [torch.zeros(g.size, dtype=torch.bool) for g in groups]
    for gi, ch in which:
        picks[gi][ch] = True
    return picks


def _owner_values(model, groups, picks):
    params = dict(model.named_parameters())
    out = {}
    for g, pick in zip(groups, picks):
        for s in g.slices:
            if s.role == "owner" and pick.any():
                out[s.name] = params[s.name].index_select(s.dim, s.positions(pick))
    return out


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_dropped_filters_stay_zero_with_bn(tiny_bn, example8, opt_name):
    model = tiny_bn
    groups = build_groups(model, example8)
    opt = OPTIMIZERS[opt_name](model.parameters())
    _train(model, opt, None, 3, hold=False)  # build optimizer state first
    masks = FilterMasks(model, groups)
    picks = _pick(groups, [(0, [1, 3]), (1, [0])])
    masks.drop(picks, opt)
    seen = {}
    handles = [
        model.bn1.register_forward_hook(lambda m, i, o: seen.__setitem__("bn1", o.detach())),
        model.bn2.register_forward_hook(lambda m, i, o: seen.__setitem__("bn2", o.detach())),
        model.bn3.register_forward_hook(lambda m, i, o: seen.__setitem__("bn3", o.detach())),
    ]
    _train(model, opt, masks, 6)
    for name, values in _owner_values(model, groups, picks).items():
        assert torch.count_nonzero(values) == 0, name
    params = dict(model.named_parameters())
    for g, pick in zip(groups, picks):
        for s in g.slices:
            if s.role == "owner" and pick.any():
                for v in opt.state[params[s.name]].values():
                    if torch.is_tensor(v) and v.shape == params[s.name].shape:
                        assert torch.count_nonzero(v.index_select(s.dim, s.positions(pick))) == 0
    # the channel's output after BatchNorm is exactly zero (train and eval mode)
    for mode in (True, False):
        model.train(mode)
        model(torch.randn(4, 3, 8, 8))
        for g, pick in zip(groups, picks):
            owners = {s.module for s in g.slices if s.role == "owner"}
            for bn_name in ("bn1", "bn2", "bn3"):
                if bn_name in owners and pick.any():
                    assert torch.count_nonzero(seen[bn_name][:, pick]) == 0, (bn_name, mode)
                    assert torch.count_nonzero(seen[bn_name][:, ~pick]) > 0
    for h in handles:
        h.remove()
    # release: values written into the slices (as a reinitializer does) survive and train
    masks.release()
    params = dict(model.named_parameters())
    with torch.no_grad():
        for g, pick in zip(groups, picks):
            for s in g.slices:
                if s.role == "owner" and pick.any():
                    t = params[s.name]
                    t.index_copy_(
                        s.dim, s.positions(pick), torch.rand_like(t.index_select(s.dim, s.positions(pick))) + 0.5
                    )
    written = {k: v.clone() for k, v in _owner_values(model, groups, picks).items()}
    model.train()
    _train(model, opt, masks, 3)
    after = _owner_values(model, groups, picks)
    assert all(torch.count_nonzero(v) > 0 for v in after.values())
    assert any(not torch.equal(after[k], written[k]) for k in written)


@pytest.mark.parametrize("opt_name", ["sgd-momentum-wd", "adamw"])
def test_c3_32_hold_survives_momentum(opt_name):
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    opt = OPTIMIZERS[opt_name](model.parameters())
    _train(model, opt, None, 3, hold=False)
    masks = FilterMasks(model, groups)
    picks = _pick(groups, [(0, [0, 5]), (2, [7])])
    masks.drop(picks, opt)
    _train(model, opt, masks, 5)
    assert torch.count_nonzero(model.features[0].weight[[0, 5]]) == 0
    assert torch.count_nonzero(model.features[0].bias[[0, 5]]) == 0
    assert torch.count_nonzero(model.features[4].weight[7]) == 0
    # consumers are not masked during the hold (they only see zero input)
    assert torch.count_nonzero(model.classifier.weight[:, 7 * 64 : 8 * 64]) > 0
    # hold puts back the zeros whatever wrote there; after release it no longer does
    with torch.no_grad():
        model.features[0].weight[[0, 5]] += 1.0
    masks.hold(opt)
    assert torch.count_nonzero(model.features[0].weight[[0, 5]]) == 0
    masks.release()
    with torch.no_grad():
        model.features[0].weight[[0, 5]] += 1.0
    masks.hold(opt)
    assert torch.count_nonzero(model.features[0].weight[[0, 5]]) == 2 * 27


def test_hold_without_state_clearing_would_fail():
    """Zeroing weights but not momentum lets the filter come back: our hold clears both."""
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    opt = OPTIMIZERS["sgd-momentum-wd"](model.parameters())
    _train(model, opt, None, 3, hold=False)
    with torch.no_grad():
        model.features[0].weight[0].zero_()
    _train(model, opt, None, 1, hold=False)
    assert torch.count_nonzero(model.features[0].weight[0]) > 0  # momentum revived it
    masks = FilterMasks(model, groups)
    masks.drop(_pick(groups, [(0, [0])]), opt)
    _train(model, opt, masks, 3)
    assert torch.count_nonzero(model.features[0].weight[0]) == 0


def test_mask_state_roundtrip(tiny_bn, example8):
    groups = build_groups(tiny_bn, example8)
    masks = FilterMasks(tiny_bn, groups)
    masks.drop(_pick(groups, [(0, [2])]))
    other = FilterMasks(tiny_bn, groups)
    other.load_state_dict(masks.state_dict())
    assert [d.tolist() for d in other.dropped] == [d.tolist() for d in masks.dropped]
    saved = masks.before_drop[0]
    assert other.before_drop[0].keys() == saved.keys() and len(saved) > 0
    assert all(torch.equal(other.before_drop[0][k], v) for k, v in saved.items())
    with torch.no_grad():  # the loaded masks hold, too
        tiny_bn.conv1.weight[2] += 1.0
    other.hold()
    assert torch.count_nonzero(tiny_bn.conv1.weight[2]) == 0


def test_mask_state_loads_by_group_name_into_a_run_that_spares_a_group():
    model = c3_32(image_size=8)
    example = torch.zeros(1, 3, 8, 8)
    every, spared = build_groups(model, example), build_groups(model, example, exclude_first=True)
    assert [g.name for g in every][1:] == [g.name for g in spared]
    full = FilterMasks(model, every)
    full.drop(_pick(every, [(1, [3])]))
    fewer = FilterMasks(model, spared)
    fewer.load_state_dict(full.state_dict())  # features.2 keeps its dropped filter, by name
    assert fewer.dropped[0].nonzero().flatten().tolist() == [3] and not fewer.dropped[1].any()
    full.drop(_pick(every, [(0, [0])]))  # now the first conv, which `fewer` never drops, holds one too
    with pytest.raises(ValueError, match="features.0"):
        fewer.load_state_dict(full.state_dict())
    legacy = {k: v for k, v in full.state_dict().items() if k != "groups"}  # written before groups were named
    again = FilterMasks(model, every)
    again.load_state_dict(legacy)  # by position
    assert [d.tolist() for d in again.dropped] == [d.tolist() for d in full.dropped]
    with pytest.raises(ValueError, match="3 groups"):
        fewer.load_state_dict(legacy)
    fewer.load_state_dict({k: v for k, v in FilterMasks(model, every).state_dict().items() if k != "groups"})
    assert not any(d.any() for d in fewer.dropped)  # nothing held anywhere: loads into any grouping


def test_returning_filters_start_with_no_optimizer_state_and_the_rest_keep_theirs(tiny_bn, example8):
    """Momentum and Adam moments of returning channels are zeroed in every slice of their group
    (consumers' input columns included); other positions and Adam's step counter are untouched."""
    from prunekit.masks import clear_optimizer_state

    model = tiny_bn
    groups = build_groups(model, example8)
    opt = OPTIMIZERS["adamw"](model.parameters())
    _train(model, opt, None, 3, hold=False)
    picks = _pick(groups, [(0, [1, 3])])
    before = {p: {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()}
    clear_optimizer_state(opt, model, groups[0].slices, picks[0])
    params = dict(model.named_parameters())
    expected = {p: {k: v.clone() for k, v in before[p].items()} for p in model.parameters()}
    cleared = set()
    for s in groups[0].slices:  # a residual-coupled conv is owner (rows) and consumer (columns) at once
        if s.name in params:
            for key in ("exp_avg", "exp_avg_sq"):
                expected[params[s.name]][key].index_fill_(s.dim, s.positions(picks[0]), 0.0)
            cleared.add(s.role)
    for p in model.parameters():
        for key in before[p]:
            assert torch.equal(opt.state[p][key], expected[p][key]), key  # the step counter included
    assert any(not torch.equal(opt.state[p]["exp_avg"], before[p]["exp_avg"]) for p in model.parameters())
    assert cleared == {"owner", "consumer"}
