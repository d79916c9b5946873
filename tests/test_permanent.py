"""Permanent schedules (oneshot, iterative, gradual), the FPGM ranker and the prune-* methods."""

import pytest
import torch
import torch.nn as nn

from prunekit import Drop, PrunekitError, Restore, build_groups
from prunekit.interfaces import RankContext
from prunekit.registry import get
from prunekit_plugins.fpgm import FPGM, total_distance
from prunekit_plugins.permanent import Gradual, Iterative, OneShot


def _keeps(timeline):
    return [ev.keep for _, ev in timeline]


def _assert_permanent(schedule, epochs):
    timeline = schedule.timeline(epochs)
    assert timeline and all(isinstance(ev, Drop) and ev.ratio is None for _, ev in timeline)
    assert not any(isinstance(ev, Restore) for _, ev in timeline)
    assert schedule.permanent(epochs)
    assert schedule.first_event(epochs) == timeline[0][0]
    assert len({e for e, _ in timeline}) == len(timeline)  # one drop per epoch at most


def _one_line_error(match, fn, *args, **kwargs):
    with pytest.raises(PrunekitError, match=match) as exc:
        fn(*args, **kwargs)
    assert "\n" not in str(exc.value)
    return str(exc.value)


# --------------------------------------------------------------------------- oneshot
def test_oneshot_drops_once_to_target_then_fine_tunes():
    s = OneShot.build("t", at=3, target=0.4, metric="macs")
    assert s.timeline(10) == [(3, Drop(keep=0.4, metric="macs"))]
    assert s.first_event(10) == 3
    _assert_permanent(s, 10)
    default = OneShot.build("t")
    assert default.timeline(5) == [(0, Drop(keep=0.5, metric="filters"))]
    assert OneShot.options() == {"target": 0.5, "metric": "filters", "at": 0}


def test_oneshot_validate_says_which_epochs_are_valid():
    s = OneShot.build("t", at=3)
    s.validate(4)  # a drop at the start of the last epoch still leaves that epoch to fine-tune
    msg = _one_line_error(r"at=3 .*epochs=3.*0\.\.2", s.validate, 3)
    assert "--set at=N" in msg and "--epochs" in msg
    assert s.timeline(3) == [] and s.first_event(3) is None and not s.permanent(3)


# --------------------------------------------------------------------------- iterative
def test_iterative_spreads_drops_and_compounds_keeps_to_target():
    s = Iterative.build("t", steps=3, start=2, end=8, target=0.125, metric="params")
    timeline = s.timeline(20)
    assert [e for e, _ in timeline] == [2, 5, 8]
    assert _keeps(timeline) == pytest.approx([0.5, 0.25, 0.125])
    assert timeline[-1][1] == Drop(keep=0.125, metric="params")  # exactly the target
    assert all(ev.metric == "params" for _, ev in timeline)
    _assert_permanent(s, 20)


@pytest.mark.parametrize("steps,start,end,epochs", [(4, 0, 5, 10), (5, 1, 5, 6), (7, 3, 40, 50), (1, 4, None, 9)])
def test_iterative_keeps_strictly_decrease_to_exact_target(steps, start, end, epochs):
    s = Iterative.build("t", steps=steps, start=start, end=end, target=0.3)
    s.validate(epochs)
    timeline = s.timeline(epochs)
    epochs_at = [e for e, _ in timeline]
    keeps = _keeps(timeline)
    assert len(timeline) == steps
    assert epochs_at[0] == start and (end is None or epochs_at[-1] == end)
    assert epochs_at == sorted(set(epochs_at))
    assert all(a > b for a, b in zip(keeps, keeps[1:]))
    assert keeps[-1] == 0.3
    assert keeps == pytest.approx([0.3 ** (i / steps) for i in range(1, steps + 1)])
    _assert_permanent(s, epochs)


def test_iterative_end_defaults_to_halfway_through_the_rest_of_the_run():
    assert [e for e, _ in Iterative.build("t").timeline(100)] == [0, 25, 50]
    assert [e for e, _ in Iterative.build("t", start=20).timeline(100)] == [20, 40, 60]
    # a short run still fits one drop per epoch when it can
    assert [e for e, _ in Iterative.build("t", steps=3).timeline(3)] == [0, 1, 2]


def test_iterative_validation():
    msg = _one_line_error(r"steps=5 .*share epochs", Iterative.build("t", steps=5, start=0, end=2).validate, 10)
    assert "--set steps=N" in msg and "--set end=N" in msg
    _one_line_error(r"epoch 12.*epochs=10", Iterative.build("t", start=0, end=12).validate, 10)
    _one_line_error(r"epoch 2.*epochs=2", Iterative.build("t", steps=3).validate, 2)
    _one_line_error(r"end=2 comes before start=5", Iterative.build, "t", start=5, end=2)
    _one_line_error(r"steps must be a positive", Iterative.build, "t", steps=0)
    _one_line_error(r"start must be a non-negative", Iterative.build, "t", start=-1)


# --------------------------------------------------------------------------- gradual
def _cubic_keep(t, start, end, target):
    return 1 - (1 - target) * (1 - (1 - (t - start) / (end - start)) ** 3)


def test_gradual_follows_the_cubic_ramp():
    s = Gradual.build("t", start=2, end=8, frequency=2, target=0.2, metric="macs")
    timeline = s.timeline(20)
    assert [e for e, _ in timeline] == [4, 6, 8]  # at start nothing is pruned yet: no event
    assert _keeps(timeline) == pytest.approx([_cubic_keep(t, 2, 8, 0.2) for t in (4, 6, 8)])
    assert timeline[-1][1] == Drop(keep=0.2, metric="macs")
    _assert_permanent(s, 20)
    # more is dropped in the first steps than the last: the cubic, not a line
    keeps = [1.0] + _keeps(timeline)
    steps = [a - b for a, b in zip(keeps, keeps[1:])]
    assert steps[0] > steps[1] > steps[2] > 0


def test_gradual_always_ends_at_end_and_defaults():
    s = Gradual.build("t", start=0, end=7, frequency=3, target=0.4)
    timeline = s.timeline(10)
    assert [e for e, _ in timeline] == [3, 6, 7]
    assert _keeps(timeline) == pytest.approx([_cubic_keep(t, 0, 7, 0.4) for t in (3, 6, 7)])
    assert timeline[-1][1].keep == 0.4
    default = Gradual.build("t").timeline(20)  # end defaults to 10, one drop per epoch 1..10
    assert [e for e, _ in default] == list(range(1, 11))
    keeps = _keeps(default)
    assert all(a > b for a, b in zip(keeps, keeps[1:])) and keeps[-1] == 0.5
    assert keeps == pytest.approx([_cubic_keep(t, 0, 10, 0.5) for t in range(1, 11)])


def test_gradual_validation():
    _one_line_error(r"end=12 .*epoch 9 \(epochs=10\)", Gradual.build("t", end=12).validate, 10)
    _one_line_error(r"start=5 .*epoch 5 \(epochs=6\)", Gradual.build("t", start=5).validate, 6)
    Gradual.build("t", start=5).validate(7)
    _one_line_error(r"end=3 must come after start=3", Gradual.build, "t", start=3, end=3)
    _one_line_error(r"frequency must be a positive", Gradual.build, "t", frequency=0)


# --------------------------------------------------------------------------- shared options
@pytest.mark.parametrize("cls", [OneShot, Iterative, Gradual])
def test_target_and_metric_are_validated(cls):
    for bad in (0, 1, 1.5, -0.2, True, "half"):
        _one_line_error(r"target .*in \(0, 1\)", cls.build, "t", target=bad)
    msg = _one_line_error(r"metric must be one of filters, macs, params, got 'flops'", cls.build, "t", metric="flops")
    assert msg.count("\n") == 0
    _one_line_error(r"does not take option\(s\) ratio", cls.build, "t", ratio=0.3)
    for metric in ("filters", "macs", "params"):
        assert all(ev.metric == metric for _, ev in cls.build("t", metric=metric).timeline(10))


@pytest.mark.parametrize("cls", [OneShot, Iterative, Gradual])
def test_epoch_options_must_be_whole_numbers(cls):
    key = {"OneShot": "at", "Iterative": "start", "Gradual": "start"}[cls.__name__]
    for bad in (-1, 1.5, "3", None):
        _one_line_error(rf"{key} must be", cls.build, "t", **{key: bad})


# --------------------------------------------------------------------------- fpgm
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


def _tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
    return model, build_groups(model, torch.zeros(1, 3, 8, 8))


def _brute_force(rows, dropped):
    out = torch.full((rows.shape[0],), float("inf"), dtype=torch.float64)
    for f in range(rows.shape[0]):
        if dropped[f]:
            continue
        out[f] = sum(
            torch.linalg.norm(rows[f].double() - rows[j].double())
            for j in range(rows.shape[0])
            if j != f and not dropped[j]
        )
    return out


def test_fpgm_matches_a_brute_force_sum_of_distances():
    model, groups = _tiny()
    assert [g.size for g in groups] == [8, 4]
    dropped = [torch.zeros(8, dtype=torch.bool), torch.zeros(4, dtype=torch.bool)]
    dropped[0][[1, 6]] = True
    scores = FPGM.build("t").scores(_ctx(model, groups, dropped))
    weights = [model[0].weight, model[2].weight]
    for score, weight, held in zip(scores, weights, dropped):
        expected = _brute_force(weight.detach().reshape(weight.shape[0], -1), held)
        assert torch.isinf(score[held]).all() and torch.isfinite(score[~held]).all()
        assert torch.allclose(score[~held].double(), expected[~held], rtol=1e-5)
    # the held channels are no one's neighbours: scores without them differ from scores with them
    with_all = FPGM.build("t").scores(_ctx(model, groups))
    assert (with_all[0][~dropped[0]] > scores[0][~dropped[0]]).all()
    assert torch.allclose(with_all[1], scores[1])


def test_fpgm_scores_the_filter_at_the_centre_lowest_and_drops_it_first():
    model, groups = _tiny()
    with torch.no_grad():
        w = model[0].weight  # 8 filters of K = 27
        centre = torch.randn(27)
        basis, _ = torch.linalg.qr(torch.randn(27, 4))
        points = [
            centre + basis[:, 0],
            centre - basis[:, 0],
            centre + basis[:, 1],
            centre - basis[:, 1],
            centre + basis[:, 2],
            centre,
            centre - basis[:, 2],
            centre + basis[:, 3],
        ]
        w.copy_(torch.stack(points).reshape(8, 3, 3, 3))
    ctx = _ctx(model, groups)
    scores = FPGM.build("t").scores(ctx)
    assert scores[0].argmin().item() == 5
    assert scores[0][5].item() == pytest.approx(7.0, rel=1e-5)  # seven unit distances from the centre
    picks = FPGM.build("t", scope="layer").select(ctx, 1 / 8)  # one filter of the first group
    assert picks[0].nonzero().flatten().tolist() == [5]
    # once the centre is held, the next pick is among the rest and never the held one again
    held = [picks[0].clone(), torch.zeros(4, dtype=torch.bool)]
    again = FPGM.build("t", scope="layer").scores(_ctx(model, groups, held))
    assert torch.isinf(again[0][5]) and again[0][:5].isfinite().all() and again[0][6:].isfinite().all()


def test_fpgm_averages_over_a_groups_filter_tensors():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.c(self.a(x) + self.b(x))

    torch.manual_seed(1)
    model = Residual()
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    g = next(i for i, grp in enumerate(groups) if len(grp.filters) == 2)
    dropped = [torch.zeros(grp.size, dtype=torch.bool) for grp in groups]
    dropped[g][2] = True
    score = FPGM.build("t").scores(_ctx(model, groups, dropped))[g]
    rows = [model.a.weight.detach().reshape(4, -1), model.b.weight.detach().reshape(4, -1)]
    expected = (_brute_force(rows[0], dropped[g]) + _brute_force(rows[1], dropped[g])) / 2
    assert torch.isinf(score[2])
    keep = ~dropped[g]
    assert torch.allclose(score[keep].double(), expected[keep], rtol=1e-5)


def test_fpgm_is_a_ranker_with_the_base_options():
    assert FPGM.options() == {"scope": "global", "max_layer_fraction": 0.75}
    assert FPGM.build("t", scope="layer", max_layer_fraction=0.5).max_layer_fraction == 0.5
    with pytest.raises(PrunekitError, match="scope"):
        FPGM.build("t", scope="everywhere")
    assert total_distance(torch.zeros(0, 5)).shape == (0,)
    assert total_distance(torch.ones(1, 5)).tolist() == [0.0]


# --------------------------------------------------------------------------- registration
def test_schedules_ranker_and_methods_are_registered():
    assert get("schedules", "oneshot") is OneShot
    assert get("schedules", "iterative") is Iterative
    assert get("schedules", "gradual") is Gradual
    assert get("rankers", "fpgm") is FPGM
    for name, ranker in [
        ("l1", "l1"),
        ("l2", "l2"),
        ("random", "random"),
        ("taylor", "taylor"),
        ("orthogonality", "orthogonality"),
        ("fpgm", "fpgm"),
    ]:
        method = get("methods", f"prune-{name}")
        assert method.name == f"prune-{name}"
        assert method.schedule == "oneshot" and method.ranker == ranker and method.reinitializer is None
        assert "iterative|gradual" in method.description
        get("rankers", method.ranker)  # the ranker it names exists
        assert get("schedules", method.schedule)().permanent(10)


def test_normalized_magnitude_is_blind_to_a_layers_scale():
    """With normalize=true each group's norms are divided by their live mean: scaling one layer's
    weights changes raw L2 picks but not the normalized ones."""

    from prunekit import Pruner

    def picks(scale: float, normalize: bool) -> dict:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3))
        with torch.no_grad():
            model[2].weight.mul_(scale)
            model[2].bias.mul_(scale)
        ranker = get("rankers", "l2").build("l2", normalize=normalize, max_layer_fraction=0.75)
        return Pruner(model, torch.zeros(1, 3, 12, 12), ranker=ranker).drop(0.25)["dropped"]

    assert picks(1.0, True) == picks(10.0, True)
    assert picks(1.0, False) != picks(10.0, False)  # raw norms: the scaled layer is spared
