"""Shared test helpers."""

import json

import pytest

from prunekit.cli import main

# the quickest `run`/`bench` setup: synthetic images, the smallest net, no progress output
FAST = ["--dataset", "synthetic", "--model", "c2_8", "--batch-size", "64", "--quiet"]

TIMING = ("seconds", "train_seconds", "images_per_s")  # record fields that differ between any two runs


def run_cli(argv, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def _strip(rows):
    """Records without their timing fields, to compare two runs."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _records_without_timing(path):
    """The records of a .jsonl file without their timing fields."""
    return _strip(json.loads(line) for line in path.read_text().splitlines())
