"""benchmarks/grid.py, the runner of the grids declared in benchmarks/grids.toml: every grid's commands are
ones `prunekit bench` accepts, the paper grid's are the old script's, reuse links, one-line errors."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from prunekit.cli import cli
from prunekit.errors import PrunekitError

pytest.importorskip("tomllib")  # Python 3.11+

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def grid(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import grid

    return grid


def run_main(module, argv, capsys):
    """A script's main in-process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        module.main(argv)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exc.value.code, captured.out, captured.err


def bench_commands(stdout: str) -> list[list[str]]:
    """The `prunekit bench` argvs of a dry run (side-by-side lines end in `&`, linked ones join with `&&`)."""
    commands = []
    for line in stdout.splitlines():
        tokens = shlex.split(line, comments=True)
        for start in (i for i, t in enumerate(tokens[:-1]) if tokens[i : i + 2] == ["prunekit", "bench"]):
            end = next((i for i in range(start, len(tokens)) if tokens[i] in ("&&", "&", ")")), len(tokens))
            commands.append(tokens[start + 1 : end])
    return commands


def all_names(grid) -> list[str]:
    config = grid.load()
    return [*config["grids"], *config["sequences"]]


def test_every_grid_is_a_bench_command_line_that_prunekit_accepts(grid, tmp_path, capsys):
    runner, config, checked = CliRunner(), grid.load(), 0
    runs = [[name] for name in all_names(grid)]
    for name, table in config["grids"].items():  # and every declared value of a grid parameter
        runs += [[name, "--param", f"{p}={v}"] for p, rows in table.get("variants", {}).items() for v in rows]
    for i, args in enumerate(runs):
        name, root = args[0], tmp_path / str(i)
        code, out, err = run_main(grid, ["run", *args, "--out-root", str(root), "--dry-run"], capsys)
        assert code == 0, err
        commands = bench_commands(out)
        assert commands, f"{name}: no bench command in\n{out}"
        checked += len(commands)
        for argv in commands:
            assert argv[argv.index("--out") + 1].startswith(str(root))  # nothing outside the root
            if "--init-from" in argv:  # a compression grid's baseline, trained first by compress.py
                Path(argv[argv.index("--init-from") + 1]).mkdir(parents=True, exist_ok=True)
            result = runner.invoke(cli, argv + ([] if "--table-only" in argv else ["--table-only"]))
            # every cell's config validated; only then does bench find nothing to tabulate
            assert isinstance(result.exception, PrunekitError), f"{name}: {shlex.join(argv)}\n{result.output}"
            assert "no run of this grid" in str(result.exception), f"{name}: {result.exception}"
    assert checked >= len(runs)


def test_the_paper_grid_runs_the_command_of_the_old_script(grid, capsys):
    # benchmarks/c3_32_paper.sh with SEEDS=1 JOBS=1
    old = [
        "prunekit", "bench", "--methods", "standard,repr", "--model", "c3_32", "--dataset", "cifar10",
        "--epochs", "100", "--channels-last", "--seeds", "1", "--jobs", "1",
        "--out", "benchmarks/results/c3_32-paper", "--quiet",
    ]  # fmt: skip
    code, out, _ = run_main(grid, ["run", "c3_32-paper", "--seeds", "1", "--jobs", "1", "--dry-run"], capsys)
    assert code == 0
    assert bench_commands(out) == [old[1:]]
    assert [shlex.split(line) for line in out.splitlines() if "prunekit bench" in line] == [old]


def test_grid_parameters_models_and_pinned_steps(grid, capsys):
    _, out, _ = run_main(grid, ["run", "resnet20-cifar10", "--param", "epochs=100", "--dry-run"], capsys)
    (argv,) = bench_commands(out)
    assert argv[argv.index("--s1") + 1 : argv.index("--s1") + 4] == ["25", "--s2", "12"]
    assert argv[argv.index("--out") + 1] == "benchmarks/results/resnet20-cifar10-100ep"
    code, _, err = run_main(grid, ["run", "resnet20-cifar10", "--param", "epochs=30", "--dry-run"], capsys)
    assert code == 2 and "epochs=30 has no row" in err and "declared: 24, 32, 48, 100, 200" in err
    # one folder per model; each model's two ablation grids before the next model's
    _, out, _ = run_main(grid, ["run", "c3_32-pooled", "--models", "c3_32p", "--seeds", "0", "--dry-run"], capsys)
    outs = [argv[argv.index("--out") + 1].rsplit("/", 1)[1] for argv in bench_commands(out)]
    assert outs == ["c3_32p", "c3_32p-from-author", "c3_32p-from-repr"]
    # a step's own seeds stay; the command line fills in what the steps leave open, or is refused
    _, out, _ = run_main(grid, ["run", "c3_32-gpu", "--seeds", "4", "--dry-run"], capsys)
    seeds = [argv[argv.index("--seeds") + 1] for argv in bench_commands(out)]
    assert seeds == ["0", "4", "4", "4", "4"]
    code, _, err = run_main(grid, ["run", "c3_32-all", "--seeds", "4", "--dry-run"], capsys)
    assert code == 2 and err.startswith("error: --seeds changes nothing in c3_32-all") and len(err.splitlines()) == 1


def test_a_finished_run_is_linked_relatively_and_an_unfinished_one_refused(grid, tmp_path, capsys):
    run, link = tmp_path / "paper" / "repr_seed1", tmp_path / "ablations" / "repr_seed1"
    run.mkdir(parents=True)
    with pytest.raises(grid.GridError, match="has not finished; run the grid that makes it first"):
        grid.link_finished_run(str(run), str(link))
    (run / "summary.json").write_text("{}")
    grid.link_finished_run(str(run), str(link))
    assert os.readlink(link) == "../paper/repr_seed1" and link.resolve() == run.resolve()
    grid.link_finished_run(str(run), str(link))  # there already: kept
    moved = tmp_path / "moved"
    tmp_path.joinpath("paper").rename(moved)
    with pytest.raises(grid.GridError, match="which does not exist; fix or remove the link"):
        grid.link_finished_run(str(moved / "repr_seed1"), str(link))

    # through the runner: the grid that reuses an unfinished run stops before any command
    code, out, err = run_main(grid, ["run", "c3_32-ablations", "--out-root", str(tmp_path)], capsys)
    assert code == 2 and out == ""
    assert err == (
        f"error: {tmp_path}/c3_32-paper/repr_seed1 has not finished; run the grid that makes it first "
        f"(it is reused as {tmp_path}/c3_32-ablations/repr_seed1)\n"
    )


def test_a_bad_name_or_grids_file_is_one_line_and_exit_status_2(grid, tmp_path):
    script = [sys.executable, str(BENCHMARKS / "grid.py")]
    done = subprocess.run([*script, "run", "c3_32-papr"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and done.stdout == ""
    assert done.stderr.startswith("error: no grid or sequence named 'c3_32-papr' in grids.toml; valid: c3_32-paper,")
    assert all(name in done.stderr for name in all_names(grid))

    bad = tmp_path / "grids.toml"
    bad.write_text('[grids.x]\ndescription = "x"\nout = "x"\nmethods = ["standard"]\njbos = 2\n')
    done = subprocess.run([*script, "list", "--grids", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"error: {bad}: grid x: unknown key 'jbos'; valid: description, out, methods")
    bad.write_text("[grids.x\n")
    done = subprocess.run([*script, "list", "--grids", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {bad} is not valid TOML (")
    assert "Traceback" not in done.stderr


def test_list_names_every_grid_with_its_folder(grid, capsys):
    code, out, _ = run_main(grid, ["list"], capsys)
    assert code == 0
    assert "benchmarks/results/c3_32-paper" in out and "benchmarks/results/gpu/resnet56-compress/grid" in out
    assert all(any(line.startswith(name + " ") for line in out.splitlines()) for name in all_names(grid))


def test_the_compression_pipeline_trains_its_baseline_and_torch_pruning_rows_with_the_grids_recipe(tmp_path):
    # benchmarks/resnet20_compress.sh's commands, from a fresh folder (SEEDS=0), for the baseline and the
    # torch-pruning fine-tune; the grid's own command is checked with the others above
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "compress.py"), "resnet20-compress", "--seeds", "0"]
        + ["--out-root", str(tmp_path), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = f"{tmp_path}/resnet20-compress"
    train = (
        "--model resnet20 --dataset cifar10 --optimizer sgd --momentum 0.9 --weight-decay 5e-4 --lr-schedule cosine "
        "--augment --channels-last"
    )
    lines = [line for line in done.stdout.splitlines() if not line.startswith("prunekit data import")]
    assert (
        lines[0]
        == f"prunekit run --method standard {train} --epochs 15 --lr 0.1 --seed 0 --out {out} --name baseline --quiet"
    )
    assert lines[1].startswith("prunekit bench ") and "--seeds 0 --jobs 2" in lines[1]
    assert lines[2] == (
        f"python benchmarks/tp_baseline.py --base {out}/baseline --keep-macs 0.5 --out {out}/torch-pruning/export_keep=0.5 "
        f"2>&1 | tee {out}/torch-pruning/tp_prune_keep=0.5.log"
    )
    assert lines[3] == (
        f"prunekit run --method standard {train} --epochs 1 --lr 0.01 --init-from {out}/torch-pruning/export_keep=0.5 "
        f"--seed 0 --out {out}/torch-pruning --name finetune_keep=0.5_seed0 --quiet"
    )
    assert lines[-1] == f"python benchmarks/compression_table.py --out {out} 2>&1 | tee {out}/compression_table.log"


@pytest.mark.slow
def test_a_grid_runs_reuses_a_finished_run_and_stops_at_a_failure(grid, tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(grid, "OFFLINE_COPY", str(tmp_path / "no-copy.tar.gz"))
    tiny = '["--dataset", "synthetic", "--model", "c2_8", "--batch-size", "64", "--epochs", "1"]'
    toml = tmp_path / "grids.toml"
    toml.write_text(
        f'[grids.tiny]\ndescription = "t"\nout = "tiny"\nmethods = ["standard"]\noptions = {tiny}\n'
        f'[grids.again]\ndescription = "a"\nout = "again"\nmethods = ["standard"]\noptions = {tiny}\n'
        'reuse = [{ from = "tiny/standard_seed{seed}", cell = "standard_seed{seed}" }]\n'
        '[grids.broken]\ndescription = "b"\nout = "broken"\nmethods = ["standard"]\noptions = ["--model", "nosuch"]\n'
    )
    root = tmp_path / "results"
    code, _, err = run_main(grid, ["run", "tiny", "again", "--grids", str(toml), "--out-root", str(root)], capfd)
    assert code == 0, err
    assert os.readlink(root / "again" / "standard_seed0") == "../tiny/standard_seed0"
    assert (root / "again" / "table.md").is_file() and not (root / "again" / "standard_seed0.log").exists()
    code, _, err = run_main(grid, ["run", "broken", "tiny", "--grids", str(toml), "--out-root", str(root)], capfd)
    assert code == 2
    assert err.splitlines()[-1] == (
        f"stopped: `prunekit bench --methods standard --model nosuch --seeds 0 --jobs 1 --out {root}/broken --quiet` "
        "exited with status 2"
    )
