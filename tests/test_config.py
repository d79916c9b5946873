"""Config resolution (prunekit.config): config files, --set values and their types, which value wins,
and one clear line for a bad value."""

import json

import pytest
from helpers import FAST, run_cli

from prunekit.config import resolve
from prunekit.errors import PrunekitError


def test_config_file_and_overrides(tmp_path, capsys):
    cfg = tmp_path / "my.yaml"
    cfg.write_text("method: repr\nlr: 0.05\nweight_decay: 5e-4\nepochs: 3\ns1: 1\ns2: 1\nnext_layer: random\n")
    code, _, err = run_cli(
        [
            "run",
            "--config",
            str(cfg),
            "--lr",
            "0.003",
            "--set",
            "scope=layer",
            "--set",
            "prune_ratio=2.5e-1",
            "--out",
            str(tmp_path),
            "--name",
            "c",
            *FAST,
        ],
        capsys,
    )
    assert code == 0, err
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert saved["lr"] == 0.003 and saved["epochs"] == 3
    assert saved["weight_decay"] == 5e-4 and saved["schedule_args"]["prune_ratio"] == 0.25  # exponents are numbers
    assert saved["reinitializer_args"]["next_layer"] == "random" and saved["ranker_args"]["scope"] == "layer"


def test_a_name_is_the_text_typed(tmp_path, capsys):
    for name in ("2024", "2024-11-30", "0755"):  # YAML would read a number, a date, an octal number
        code, _, err = run_cli(["run", "--set", f"name={name}", "--epochs", "1", "--out", str(tmp_path), *FAST], capsys)
        assert code == 0, err
        assert json.loads((tmp_path / name / "config.json").read_text())["name"] == name
    cfg = tmp_path / "named.yaml"
    cfg.write_text("name: 2024-12-01\n")
    code, _, err = run_cli(["run", "--config", str(cfg), "--epochs", "1", "--out", str(tmp_path), *FAST], capsys)
    assert code == 0 and (tmp_path / "2024-12-01" / "config.json").exists(), err


def test_bad_config_files(tmp_path, capsys):
    missing = tmp_path / "missing.yaml"
    code, _, err = run_cli(["run", "--config", str(missing)], capsys)
    assert code == 2 and "cannot read config file" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("lr: [0.1\n")
    code, _, err = run_cli(["run", "--config", str(broken)], capsys)
    assert code == 2 and "cannot parse config file" in err
    listed = tmp_path / "listed.yaml"
    listed.write_text("model: [c3_32]\n")
    code, _, err = run_cli(["run", "--config", str(listed)], capsys)
    assert code == 2 and "model must be a name, got ['c3_32']" in err and "Traceback" not in err
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("learning_rate: 0.1\n")
    code, _, err = run_cli(["run", "--config", str(wrong)], capsys)
    assert code == 2 and "learning_rate" in err and "valid:" in err


def test_cli_beats_config_file_whatever_the_spelling(tmp_path):
    cfg = resolve({"method": "repr", "s1": 5}, {"schedule.s1": 10})
    assert cfg.schedule_args["s1"] == 10
    cfg = resolve({"method": "repr", "schedule.s1": 5}, {"s1": 10})
    assert cfg.schedule_args["s1"] == 10


@pytest.mark.parametrize(
    "values, message",
    [
        ({"method": "standard", "schedule": "repr"}, "has no ranker"),
        ({"optimizer": "adamw", "momentum": 0.9}, "apply to sgd only"),
        ({"method": "repr", "max_layer_fraction": "abc"}, "bad option value"),
        ({"lr_milestones": 30}, "lr_milestones must be a list"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"augment": "yes"}, "augment must be true or false"),
    ],
)
def test_bad_values_are_one_line_errors(values, message):
    with pytest.raises(PrunekitError, match=message):
        resolve(values)


def test_exclude_accepts_a_single_pattern():
    assert resolve({"exclude": "features.0"}).exclude == ["features.0"]
