"""prunekit.plot on hand-written run directories (no training involved)."""

import json

import pytest

from prunekit.errors import PrunekitError
from prunekit.plot import drop_phases, filter_map, plot_runs, run_labels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def _fake_run(root, name, with_events):
    run = root / name
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps(
            {
                "method": "repr" if with_events else "baseline",
                "model": "c3_32",
                "dataset": "synthetic",
                "seed": 0,
                "epochs": 4,
            }
        )
    )
    _write_jsonl(
        run / "metrics.jsonl",
        [
            {
                "epoch": e,
                "train_loss": 2.3 - 0.2 * e,
                "train_acc": 0.1 * e,
                "test_loss": 2.3 - 0.1 * e,
                "test_acc": 0.08 * e,
                "lr": 0.01,
                "seconds": 1.0,
                "images_per_s": 100.0,
                "dropped": {"features.2": 0.25 if with_events and e == 2 else 0.0, "features.10": 0.0},
            }
            for e in range(1, 5)
        ],
    )
    events = []
    if with_events:
        events = [
            {
                "epoch": 1,
                "event": "drop",
                "ratio": 0.2,
                "dropped": {"features.10": [0], "features.2": [1, 3]},
                "fraction": {"features.10": 0.125, "features.2": 0.5},
                "sizes": {"features.10": 8, "features.2": 4},
            },
            {"epoch": 2, "event": "restore", "restored": {"features.10": [0], "features.2": [1, 3]}, "log": []},
        ]
    _write_jsonl(run / "events.jsonl", events)
    return run


def _assert_png(path):
    assert path.is_file() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_plot_runs_writes_curves_and_filter_map_only_for_dropping_run(tmp_path):
    repr_run = _fake_run(tmp_path, "repr_run", with_events=True)
    base_run = _fake_run(tmp_path, "base_run", with_events=False)
    out = tmp_path / "plots"

    written = plot_runs([repr_run, base_run], out)

    assert written == [out / "curves.png", out / "filters_repr_run.png"]
    for path in written:
        _assert_png(path)
    assert not (out / "filters_base_run.png").exists()


def test_plot_runs_defaults_to_first_run_dir(tmp_path):
    base_run = _fake_run(tmp_path, "base_run", with_events=False)
    assert plot_runs([base_run], None) == [base_run / "curves.png"]
    _assert_png(base_run / "curves.png")


def test_missing_metrics_is_a_user_error(tmp_path):
    empty = tmp_path / "not_a_run"
    empty.mkdir()
    with pytest.raises(PrunekitError, match="has no metrics.jsonl"):
        plot_runs([empty], tmp_path)


def test_drop_phases_and_filter_map():
    drop = {"epoch": 1, "event": "drop", "dropped": {"b.10": [0], "b.2": [1, 3]}, "sizes": {"b.10": 2}}
    assert drop_phases([drop, {"epoch": 2, "event": "restore"}, dict(drop, epoch=3)], 4) == [(1, 2), (3, 4)]

    grid, groups = filter_map([drop])
    # natural order (b.2 before b.10); b.2 has no size, so max index + 1 = 4
    assert groups == [("b.2", 4), ("b.10", 2)]
    assert grid[:, 0].tolist() == [0, 1, 0, 1, 1, 0]


def test_curves_shade_drop_phases_even_when_the_dropping_run_is_not_first(tmp_path, monkeypatch):
    import matplotlib.axes

    spans = []
    original = matplotlib.axes.Axes.axvspan

    def recording(self, start, end, **kw):
        spans.append((start, end))
        return original(self, start, end, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "axvspan", recording)
    titles = []
    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle", lambda self, text, **kw: titles.append(text))
    base_run = _fake_run(tmp_path, "base_run", with_events=False)
    repr_run = _fake_run(tmp_path, "repr_run", with_events=True)
    plot_runs([base_run, repr_run], tmp_path / "plots")
    assert spans == [(1, 2)] * 4  # one shaded drop phase on each of the four panels
    assert titles == ["grey: sub-network phases of repr_run"]  # the caption names the run that shades


def test_runs_keep_the_names_they_are_given_and_two_of_one_name_are_told_apart(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _fake_run(tmp_path / "a", "repr_seed0", with_events=True)
    second = _fake_run(tmp_path / "b", "repr_seed0", with_events=True)
    link = tmp_path / "repr_ranker=orthogonality_seed0"
    link.symlink_to(first)
    assert run_labels([link, tmp_path / "b" / "." / "repr_seed0"]) == ["repr_ranker=orthogonality_seed0", "repr_seed0"]
    assert run_labels([first, second]) == ["a/repr_seed0", "b/repr_seed0"]
    assert run_labels([tmp_path / "a/x/r", tmp_path / "b/x/r", tmp_path / "q"]) == ["a/x/r", "b/x/r", "q"]
    written = plot_runs([first, second], tmp_path / "plots")
    assert [p.name for p in written] == ["curves.png", "filters_a-repr_seed0.png", "filters_b-repr_seed0.png"]
