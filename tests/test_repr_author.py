"""Issue #26, RePr in the paper's own regime: the pooled C^3(32) nets, the first author's
Gram–Schmidt re-init, and the `repr-author` method built from existing options."""

import pytest
import torch
import torch.nn.functional as F

from prunekit import registry
from prunekit.config import resolve
from prunekit.errors import PrunekitError
from prunekit.groups import build_groups
from prunekit.models import c3_32
from prunekit.models.cnn import pooled_size
from prunekit.pruner import Pruner
from prunekit_plugins.repr import GramSchmidt, gram_schmidt


# --------------------------------------------------------------------------- pooled models
@pytest.mark.parametrize("name, kernel, pool", [("c3_32p", 3, (2, 2, 0)), ("c3_32a", 5, (3, 2, 1))])
def test_pooled_c3_32_layers_and_linear_size(name, kernel, pool):
    model = registry.get("models", name)()
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in model.features if isinstance(m, torch.nn.MaxPool2d)]
    assert [c.out_channels for c in convs] == [32, 32, 32] and len(pools) == 3
    assert all(
        c.kernel_size == (kernel, kernel) and c.padding == (kernel // 2,) * 2 and c.stride == (1, 1) for c in convs
    )
    assert all((p.kernel_size, p.stride, p.padding) == pool for p in pools)
    # conv -> ReLU -> pool, three times: 32 -> 16 -> 8 -> 4
    assert [type(m).__name__ for m in model.features[:3]] == ["Conv2d", "ReLU", "MaxPool2d"]
    assert model.classifier.in_features == 32 * 4 * 4
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    # the Linear follows the image size: 24 -> 12 -> 6 -> 3 (both pools), 100 classes
    small = registry.get("models", name)(num_classes=100, image_size=24)
    assert small.classifier.in_features == 32 * 3 * 3 and small(torch.zeros(1, 3, 24, 24)).shape == (1, 100)


def test_pooled_size_arithmetic_matches_the_layers():
    for variant in ("p", "a"):
        for size, depth in ((32, 3), (28, 2), (33, 4), (17, 1)):
            model = registry.get("models", f"c{depth}_4{variant}")(image_size=size)
            side = model.features(torch.zeros(1, 3, size, size)).shape[-1]
            assert side == pooled_size(size, depth, variant) and model.classifier.in_features == 4 * side * side
    assert pooled_size(32, 3) == 32  # no pool: the map keeps its size
    assert pooled_size(32, 8, "a") == 1  # a 3×3/2 pool with padding 1 never empties a map
    with pytest.raises(PrunekitError, match="at most 5"):
        registry.get("models", "c6_32p")()  # 32 -> 16 -> 8 -> 4 -> 2 -> 1 -> 0


def test_pooled_names_are_listed_and_c3_32_is_unchanged():
    assert {"c3_32", "c3_32p", "c3_32a"} <= set(registry.names("models", "c*"))
    with pytest.raises(PrunekitError):
        registry.get("models", "c3_32q")  # not a variant
    # c3_32's modules and init draws as before the pooled variants existed (existing records depend on them)
    torch.manual_seed(0)
    state = c3_32().state_dict()
    assert list(state) == [
        "features.0.weight",
        "features.0.bias",
        "features.2.weight",
        "features.2.bias",
        "features.4.weight",
        "features.4.bias",
        "classifier.weight",
        "classifier.bias",
    ]
    first_two = {
        "features.0.weight": [-0.0014408392598852515, 0.10323861986398697],
        "features.2.bias": [-0.02813396230340004, 0.04980623722076416],
        "features.4.weight": [0.030181020498275757, 0.024200664833188057],
        "classifier.weight": [0.0031735666561871767, -0.001205112086609006],
        "classifier.bias": [-0.0018352686893194914, 0.0006829178892076015],
    }
    for key, values in first_two.items():
        assert state[key].flatten()[:2].tolist() == pytest.approx(values, abs=1e-9)
    assert state["classifier.weight"].shape == (10, 32 * 32 * 32)
    assert state["features.4.weight"].double().sum().item() == pytest.approx(5.1113552414726655, abs=1e-9)


@pytest.mark.parametrize("name", ["c3_32p", "c3_32a"])
def test_pooled_groups_map_each_channel_to_its_pooled_linear_block(name):
    model = registry.get("models", name)()
    groups = build_groups(model, torch.zeros(1, 3, 32, 32))
    assert [g.name for g in groups] == ["features.0", "features.3", "features.6"]
    assert all(g.size == 32 and g.filters == [f"{g.name}.weight"] for g in groups)
    for g, nxt in zip(groups[:2], ("features.3.weight", "features.6.weight")):
        roles = {(s.name, s.role) for s in g.slices}
        assert roles == {(f"{g.name}.weight", "owner"), (f"{g.name}.bias", "owner"), (nxt, "consumer")}
    last = {(s.name, s.role): s for s in groups[2].slices}
    assert set(last) == {
        ("features.6.weight", "owner"),
        ("features.6.bias", "owner"),
        ("classifier.weight", "consumer"),
    }
    linear = last[("classifier.weight", "consumer")]
    assert linear.dim == 1 and len(linear.index) == 32 * 4 * 4
    for k in (0, 5, 31):  # channel k <-> Linear inputs 16k ... 16k + 15 (4×4 pooled maps)
        mask = torch.zeros(32, dtype=torch.bool)
        mask[k] = True
        assert linear.positions(mask).tolist() == list(range(16 * k, 16 * k + 16))
    # and it is the flatten's own order: only those inputs see channel k of the last conv
    x = torch.randn(1, 3, 32, 32)
    feats = model.features(x)
    zeroed = feats.clone()
    zeroed[:, 5] = 0
    changed = (torch.flatten(feats, 1) != torch.flatten(zeroed, 1)).nonzero()[:, 1]
    assert set(changed.tolist()) <= set(range(80, 96)) and len(changed) > 0


# --------------------------------------------------------------------------- gram-schmidt
def test_gram_schmidt_of_hand_made_rows():
    a = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    b = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    c = torch.tensor([1.0, 2.0, 3.0, 0.0], dtype=torch.float64)
    rows = torch.stack([a, 2 * a, b, torch.zeros(4, dtype=torch.float64), -c, torch.ones(4, dtype=torch.float64), c])
    units, room = gram_schmidt(rows)
    # 2a lies in the span of a, the zero row has nothing; after a, b, -c and the ones, 4 dims are full
    assert room.tolist() == [True, False, True, False, True, True, False]
    expected = torch.stack(
        [
            a,
            torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64),
            torch.tensor([0.0, 0.0, -1.0, 0.0], dtype=torch.float64),
            torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64),
        ]
    )
    assert torch.allclose(units[[0, 2, 4, 5]], expected, atol=1e-12)
    assert torch.count_nonzero(units[[1, 3, 6]]) == 0


def test_gram_schmidt_matches_projections_on_random_rows():
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(12, 30, generator=g, dtype=torch.float64)
    units, room = gram_schmidt(rows)
    assert room.all()
    for j in range(12):
        before = rows[:j]
        proj = before.T @ torch.linalg.lstsq(before.T, rows[j]).solution if j else torch.zeros(30, dtype=torch.float64)
        residual = rows[j] - proj
        assert torch.allclose(units[j], residual / residual.norm(), atol=1e-10)  # the residual, pointing its own way
        assert (units[j] @ rows[j]) > 0


def _restore(model, groups, picks, reinit, example):
    pruner = Pruner(model, example, reinitializer=reinit, groups=groups)
    pruner.masks.drop(picks, None)
    with torch.no_grad():  # the sub-network trains meanwhile: the survivors of the layer move
        for g, grp in enumerate(groups):
            if picks[g].any():
                weight = model.get_submodule(grp.name).weight
                weight[~picks[g]] += 0.01 * torch.randn_like(weight[~picks[g]])
    return pruner.restore(None, torch.Generator().manual_seed(3))


def _cos(x, y):
    return F.normalize(x.double(), dim=1) @ F.normalize(y.double(), dim=1).T


def test_returning_filters_are_orthogonal_to_every_filter_before_them():
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ret = [3, 4, 17, 30]
    picks = [torch.zeros(32, dtype=torch.bool) for _ in groups]
    picks[1][ret] = True
    record = _restore(model, groups, picks, GramSchmidt.build("t"), torch.zeros(1, 3, 8, 8))
    after = model.state_dict()
    new, old = after["features.2.weight"].flatten(1), before["features.2.weight"].flatten(1)
    for j in ret:
        assert _cos(new[j : j + 1], new[:j]).abs().max() < 1e-6  # survivors and the returning filters before it
        assert new[j].norm() == pytest.approx(old[j].norm().item(), rel=1e-5)  # scale keep: its old norm
        assert _cos(new[j : j + 1], old[j : j + 1]).item() > 0.5  # near its old value (random 3×3×32 filters)
    assert torch.equal(after["features.2.bias"][ret], before["features.2.bias"][ret])  # bias: its old value
    assert torch.equal(after["features.4.weight"], before["features.4.weight"])  # next layer kept (the default)
    assert torch.equal(after["features.0.weight"], before["features.0.weight"])
    assert any(line.startswith("features.2") and "gram-schmidt of 4 old values" in line for line in record["log"])


def test_a_nearly_orthogonal_filter_comes_back_close_to_its_old_value():
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    conv = model.features[2]
    with torch.no_grad():  # 32 orthogonal rows in K = 288, slightly perturbed, norms 0.5 ... 2
        q, _ = torch.linalg.qr(torch.randn(288, 32, dtype=torch.float64))
        rows = q.T * torch.linspace(0.5, 2.0, 32, dtype=torch.float64)[:, None]
        rows += 1e-3 * torch.randn_like(rows)
        conv.weight.copy_(rows.reshape(conv.weight.shape).float())
    old = conv.weight.detach().clone().flatten(1)
    picks = [torch.zeros(32, dtype=torch.bool) for _ in groups]
    picks[1][[0, 9, 20]] = True
    pruner = Pruner(model, torch.zeros(1, 3, 8, 8), reinitializer=GramSchmidt.build("t"), groups=groups)
    pruner.masks.drop(picks, None)
    pruner.restore(None, torch.Generator().manual_seed(3))
    new = conv.weight.detach().flatten(1)
    assert torch.equal(new[0], old[0])  # nothing before channel 0: its old value, as it was
    for j in (9, 20):
        assert (new[j] - old[j]).norm() / old[j].norm() < 1e-2
        assert _cos(new[j : j + 1], new[:j]).abs().max() < 1e-6
    assert torch.equal(new[picks[1].logical_not()], old[picks[1].logical_not()])


def test_first_layer_filters_with_no_room_keep_their_old_values_and_scale_none_gives_unit_rows():
    torch.manual_seed(0)
    model = c3_32(image_size=8)  # first conv: 32 filters in K = 27 dimensions
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    old = model.features[0].weight.detach().clone().flatten(1)
    picks = [torch.zeros(32, dtype=torch.bool) for _ in groups]
    picks[0][[2, 26, 27, 31]] = True
    pruner = Pruner(model, torch.zeros(1, 3, 8, 8), reinitializer=GramSchmidt.build("t", scale="none"), groups=groups)
    pruner.masks.drop(picks, None)
    record = pruner.restore(None, torch.Generator().manual_seed(3))
    new = model.features[0].weight.detach().flatten(1)
    for j in (2, 26):  # within the first 27: orthogonal, unit norm
        assert _cos(new[j : j + 1], new[:j]).abs().max() < 1e-6 and new[j].norm() == pytest.approx(1.0, rel=1e-6)
    assert torch.equal(new[[27, 31]], old[[27, 31]])  # the 27 filters before them span every direction
    assert any("2 kept their old values" in line and "K=27" in line for line in record["log"]), record["log"]


def test_gram_schmidt_options():
    assert GramSchmidt.options() == {"next_layer": "keep", "scale": "keep"}
    with pytest.raises(PrunekitError, match="scale must be keep or none"):
        GramSchmidt.build("t", scale="norm-match")
    assert registry.get("reinitializers", "gram-schmidt") is GramSchmidt


@pytest.mark.parametrize("mode", ["zero", "random"])
def test_gram_schmidt_honours_next_layer(mode):
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    before = model.features[4].weight.detach().clone()
    picks = [torch.zeros(32, dtype=torch.bool) for _ in groups]
    picks[1][[1, 6]] = True
    pruner = Pruner(
        model, torch.zeros(1, 3, 8, 8), reinitializer=GramSchmidt.build("t", next_layer=mode), groups=groups
    )
    pruner.masks.drop(picks, None)
    pruner.restore(None, torch.Generator().manual_seed(3))
    cols = model.features[4].weight.detach()[:, [1, 6]]
    if mode == "zero":
        assert torch.count_nonzero(cols) == 0
    else:
        assert (cols != before[:, [1, 6]]).float().mean() > 0.99
    others = [c for c in range(32) if c not in (1, 6)]
    assert torch.equal(model.features[4].weight.detach()[:, others], before[:, others])


# --------------------------------------------------------------------------- the method
def test_repr_author_resolves_to_the_authors_options():
    author, repr_ = resolve({"method": "repr-author"}), resolve({"method": "repr"})
    assert (author.ranker, author.reinitializer, author.schedule) == ("orthogonality", "gram-schmidt", "repr")
    assert author.ranker_args == {
        "scope": "global",
        "max_layer_fraction": 1.0,
        "normalization": "layer",
        "fan_in_correction": False,
    }
    assert author.reinitializer_args == {"next_layer": "keep", "scale": "keep"}
    assert author.schedule_args == repr_.schedule_args == {"s1": 20, "s2": 10, "prune_ratio": 0.3, "cycles": None}
    assert repr_.ranker_args == {**author.ranker_args, "max_layer_fraction": 0.75, "normalization": "filter"}
    assert repr_.reinitializer_args == {"next_layer": "zero", "scale": "norm-match"}


def _differences(a, b):
    da, db = a.to_dict(), b.to_dict()
    out = {k for k in da if k not in ("method", "ranker_args", "reinitializer_args") and da[k] != db[k]}
    for kind in ("ranker_args", "reinitializer_args"):
        out |= {f"{kind}.{k}" for k in set(da[kind]) | set(db[kind]) if da[kind].get(k) != db[kind].get(k)}
    return out


@pytest.mark.parametrize(
    "override, changed",
    [
        ({"normalization": "filter"}, {"ranker_args.normalization"}),
        ({"max_layer_fraction": 0.75}, {"ranker_args.max_layer_fraction"}),
        ({"next_layer": "zero"}, {"reinitializer_args.next_layer"}),
        # nullspace's own default is next_layer zero, so the reinitializer alone is --reinit nullspace --next-layer keep
        ({"reinitializer": "nullspace", "next_layer": "keep"}, {"reinitializer", "reinitializer_args.scale"}),
        (
            {"reinitializer": "nullspace"},
            {"reinitializer", "reinitializer_args.scale", "reinitializer_args.next_layer"},
        ),
    ],
)
def test_each_difference_from_repr_is_one_option(override, changed):
    base = resolve({"method": "repr-author"})
    assert _differences(base, resolve({"method": "repr-author"}, override)) == changed
    # and from repr's side, the same option switches it to the author's choice
    to_author = {"normalization": "layer", "max_layer_fraction": 1.0, "next_layer": "keep"}
    key = next(iter(override))
    if key in to_author:
        assert _differences(resolve({"method": "repr"}), resolve({"method": "repr"}, {key: to_author[key]})) == {
            f"{'ranker' if key != 'next_layer' else 'reinitializer'}_args.{key}"
        }


def test_a_repr_author_run_on_a_pooled_net(tmp_path):
    import json

    from prunekit.engine import start_run

    values = {
        "method": "repr-author",
        "dataset": "synthetic",
        "model": "c2_8p",
        "epochs": 4,
        "s1": 1,
        "s2": 1,
        "out": str(tmp_path),
        "name": "r",
        "batch_size": 64,
    }
    start_run(resolve(values))
    events = [json.loads(line) for line in (tmp_path / "r" / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["drop", "restore"]
    assert any("gram-schmidt" in line for line in events[1]["log"]), events[1]["log"]
