"""Data-driven rankers: known answers on hand-made models, and nothing disturbed."""

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from prunekit import registry
from prunekit.groups import build_groups
from prunekit.interfaces import RankContext
from prunekit.models import c3_32

NAMES = ["activation", "apoz", "gradient", "taylor", "hessian", "oracle"]


def _ctx(model, groups, seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    data = [(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)) for _ in range(3)]
    return RankContext(
        model,
        groups,
        [torch.zeros(gr.size, dtype=torch.bool) for gr in groups],
        torch.Generator().manual_seed(0),
        lambda k: iter(data[:k]),
        F.cross_entropy,
        torch.device("cpu"),
    )


def _model():
    torch.manual_seed(0)
    model = c3_32(image_size=8)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    return model, groups


@pytest.mark.parametrize("name", ["activation", "apoz", "taylor", "hessian"])
def test_a_dead_filter_ranks_last(name):
    model, groups = _model()
    with torch.no_grad():
        model.features[2].weight[13].zero_()
        model.features[2].bias[13] = -1.0  # ReLU output always zero
    scores = registry.get("rankers", name).build(name, batches=2).scores(_ctx(model, groups))
    assert int(torch.argmin(scores[1])) == 13


@pytest.mark.parametrize("name", ["gradient", "taylor", "hessian", "oracle"])
def test_a_filter_the_classifier_ignores_ranks_last(name):
    model, groups = _model()
    with torch.no_grad():
        model.classifier.weight[:, 21 * 64 : 22 * 64] = 0  # conv3 channel 21 feeds nothing
    scores = registry.get("rankers", name).build(name, batches=2).scores(_ctx(model, groups))
    assert scores[2][21].abs() < 1e-6
    if name == "oracle":  # a loss change can be negative on an untrained net: 21 ranks below every filter that matters
        assert (scores[2] > 1e-6).sum() > 0 and (scores[2][21] < scores[2][scores[2] > 1e-6]).all()
    else:
        assert int(torch.argmin(scores[2])) == 21


def test_hessian_ranker_matches_the_exact_hessian_diagonal():
    """On a ReLU / max-pool net, the sampled-label estimate converges to ½ Σ diag(H) a²,
    with H the loss Hessian with respect to the conv output, computed exactly by autograd."""
    torch.manual_seed(0)
    conv, head = torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4 * 3 * 3, 5)
    model = torch.nn.Sequential(conv, torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), head)
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    x, y = torch.randn(6, 3, 8, 8), torch.randint(0, 5, (6,))
    ctx = RankContext(
        model,
        groups,
        [torch.zeros(g.size, dtype=torch.bool) for g in groups],
        torch.Generator().manual_seed(0),
        lambda k: iter([(x, y)][:k]),
        F.cross_entropy,
        torch.device("cpu"),
    )
    estimate = registry.get("rankers", "hessian").build("hessian", batches=1, samples=3000).scores(ctx)[0]

    with torch.no_grad():
        a = conv(x)

    def loss_of(act):
        return F.cross_entropy(model[1:](act), y)

    hessian = torch.autograd.functional.hessian(loss_of, a).reshape(a.numel(), a.numel())
    diag = hessian.diagonal().reshape(a.shape)
    exact = 0.5 * (diag * a.square()).sum(dim=(0, 2, 3))
    assert (exact > 0).all()
    torch.testing.assert_close(estimate, exact, rtol=0.1, atol=0.0)


@pytest.mark.parametrize("name", NAMES)
def test_ranking_changes_nothing(name, tiny_bn):
    model = tiny_bn
    groups = build_groups(model, torch.zeros(1, 3, 8, 8))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 10, (16,))
    model.train()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    momentum = {n: opt.state[p]["momentum_buffer"].clone() for n, p in model.named_parameters()}
    model.eval()
    with torch.no_grad():
        out_before = model(x)
    model.train()
    ranker = registry.get("rankers", name).build(name, batches=2)
    scores = ranker.scores(_ctx(model, groups))
    assert [len(s) for s in scores] == [g.size for g in groups]
    assert all(torch.isfinite(s).all() for s in scores)
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)  # weights and BN running stats
    assert all(torch.equal(grads[n], p.grad) for n, p in model.named_parameters())
    assert all(torch.equal(momentum[n], opt.state[p]["momentum_buffer"]) for n, p in model.named_parameters())
    model.eval()
    with torch.no_grad():
        assert torch.equal(out_before, model(x))


@pytest.mark.parametrize("name", ["activation", "gradient", "taylor", "hessian"])
def test_in_place_activations_do_not_change_the_scores_and_stay_in_place(name):
    """An in-place ReLU after a hooked conv overwrites the saved output with its ReLU: ranking switches
    such modules out of place for its passes and back afterwards. Without that, ``gradient``'s scores
    change (the others happen to read the same through a ReLU); every ranker must switch them back."""
    import copy

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    results = []
    for net in (model, plain):
        groups = build_groups(net, torch.zeros(1, 3, 8, 8))
        results.append(registry.get("rankers", name).build(name, batches=2).scores(_ctx(net, groups)))
    assert all(torch.allclose(a, b) for a, b in zip(*results))
    assert [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)] == [True, True]


def test_data_rankers_inside_a_run(tmp_path):
    from prunekit.config import resolve
    from prunekit.engine import start_run

    drops, first_epochs = {}, {}
    for batches in (1, 2):
        cfg = resolve(
            {
                "method": "repr",
                "ranker": "taylor",
                "dataset": "synthetic",
                "model": "c2_8",
                "epochs": 3,
                "s1": 1,
                "s2": 1,
                "batch_size": 64,
                "out": str(tmp_path),
                "name": f"b{batches}",
                "ranker.batches": batches,
            }
        )
        assert start_run(cfg)["events"] == 2
        run = tmp_path / f"b{batches}"
        drops[batches] = next(json.loads(line) for line in (run / "events.jsonl").open())
        first_epochs[batches] = json.loads((run / "metrics.jsonl").open().readline())["train_loss"]
    # same training up to the drop; the ranker saw 1 batch in one run and 2 in the other, so its scores differ
    assert first_epochs[1] == first_epochs[2]
    assert drops[1]["event"] == drops[2]["event"] == "drop"
    assert drops[1]["scores"] != drops[2]["scores"]
    # Taylor's scores (|a · dL/da|, tiny on this net), not the weights' norms
    assert max(max(v) for v in drops[2]["scores"].values()) < 1e-2


@pytest.mark.parametrize("arch", ["resnet20", "timm:mobilenetv3_small_050", "timm:convnext_atto"])
def test_data_rankers_on_coupled_groups(arch):
    torch.manual_seed(0)
    model = registry.get("models", arch)(num_classes=10, in_channels=3, image_size=32)
    groups = build_groups(model, torch.zeros(1, 3, 32, 32))
    data = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,)))]
    ctx = RankContext(
        model,
        groups,
        [torch.zeros(g.size, dtype=torch.bool) for g in groups],
        torch.Generator().manual_seed(0),
        lambda k: iter(data[:k]),
        F.cross_entropy,
        torch.device("cpu"),
    )
    for name in ("activation", "taylor", "hessian"):
        scores = registry.get("rankers", name).build(name, batches=1).scores(ctx)
        assert [len(s) for s in scores] == [g.size for g in groups]
        assert all(torch.isfinite(s).all() for s in scores)
        assert sum(int((s > 0).sum()) for s in scores) > 0
