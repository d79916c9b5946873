"""The learning-rate schedules, epoch by epoch."""

import pytest
import torch

from prunekit.config import resolve
from prunekit.engine import make_lr_schedule


def _rates(epochs, **values):
    cfg = resolve({"method": "standard", "epochs": epochs, "lr": 0.1, **values})
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    schedule = make_lr_schedule(cfg, opt)
    rates = []
    for _ in range(epochs):
        rates.append(round(opt.param_groups[0]["lr"], 10))
        opt.step()
        schedule.step()
    return rates


@pytest.mark.parametrize(
    "epochs, expected",
    [
        (100, [0.1] * 50 + [0.01] * 25 + [0.001] * 25),
        (4, [0.1, 0.1, 0.01, 0.001]),
        (3, [0.1, 0.01, 0.001]),
        (2, [0.1, 0.01]),  # both decays at once would skip 0.01
        (1, [0.1]),  # a decay at epoch 0 would train the whole run at 1 % of --lr
    ],
)
def test_step_schedule_decays_at_half_and_three_quarters_with_an_epoch_at_each_rate(epochs, expected):
    assert _rates(epochs, lr_schedule="step") == expected


def test_step_schedule_takes_the_given_milestones_and_gamma():
    assert _rates(5, lr_schedule="step", lr_milestones=[1, 4], lr_gamma=0.5) == [0.1, 0.05, 0.05, 0.05, 0.025]


def test_cosine_anneals_towards_zero_and_constant_stays():
    cosine = _rates(10, lr_schedule="cosine")
    assert cosine[0] == 0.1 and all(a > b for a, b in zip(cosine, cosine[1:])) and cosine[-1] < 0.01
    assert _rates(3, lr_schedule="constant") == [0.1] * 3
