"""Shared test helpers."""

import csv
import json

import pytest

from prunekit.cli import main

# the data and model of every quick run: synthetic images, the smallest net
SYNTH = ["--dataset", "synthetic", "--model", "c2_8"]
# the quickest `run`/`bench` setup: SYNTH in batches of 64, no progress output
FAST = [*SYNTH, "--batch-size", "64", "--quiet"]

TIMING = ("seconds", "train_seconds", "images_per_s")  # record fields that differ between any two runs


def run_cli(argv, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def bench_argv(methods, *options, out=None, base=FAST):
    """A `prunekit bench` argv: the grid of ``methods`` (comma-separated) on ``base`` with ``options``,
    written to ``out`` when given (else the caller adds --out)."""
    argv = ["bench", "--methods", methods, *base, *options]
    return argv if out is None else [*argv, "--out", str(out)]


def read_jsonl(path):
    """The records of a .jsonl file, one dict a line."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def table_rows(out):
    """The rows of a grid's table.csv by method."""
    return {r["method"]: r for r in csv.DictReader((out / "table.csv").open())}


def _strip(rows):
    """Records without their timing fields, to compare two runs."""
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _records_without_timing(path):
    """The records of a .jsonl file without their timing fields."""
    return _strip(read_jsonl(path))
