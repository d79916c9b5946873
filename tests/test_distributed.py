"""torchrun on the CPU (gloo, 2 ranks): the ranks stay one run, agree with one process, and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import FAST, run_cli

from prunekit import distributed
from prunekit.data import Batches, synthetic
from prunekit.errors import PrunekitError

HERE = Path(__file__).parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
RUN = ["-m", "prunekit", "run", *FAST]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(args, cwd, timeout=300):
    """torchrun with each rank's stderr kept in its own file (``--redirects 2``), so that a failure
    shows what every rank said, not only the agent's summary that ends the combined stream."""
    logs = Path(cwd) / f"torchrun-logs-{time.monotonic_ns()}"
    result = subprocess.run(
        TORCHRUN[:3] + ["--log-dir", str(logs), "--redirects", "2"] + TORCHRUN[3:] + args,
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result.ranks_said = "\n".join(
        f"--- rank {log.parent.name} stderr ---\n{log.read_text()[-3000:]}"
        for log in sorted(logs.glob("*/attempt_*/*/stderr.log"))
    )
    return result


def said(result) -> str:
    """What a failed torchrun left: every rank's stderr, then the tail of the agent's own."""
    return f"{result.ranks_said}\n--- torchrun ---\n{result.stderr[-1500:]}"


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.parametrize("augment", [False, True])
def test_shards_of_each_batch_make_up_the_one_process_batch(augment):
    data = synthetic(n_train=70)
    kw = dict(device=torch.device("cpu"), shuffle=True, augment=augment)
    whole = list(
        Batches(data.train_x, data.train_y, 32, data.mean, data.std, generator=torch.Generator().manual_seed(5), **kw)
    )
    parts = [
        list(
            Batches(
                data.train_x,
                data.train_y,
                32,
                data.mean,
                data.std,
                generator=torch.Generator().manual_seed(5),
                shard=(rank, 3),
                **kw,
            )
        )
        for rank in range(3)
    ]
    assert len(whole) == 3 and [len(p) for p in parts] == [3, 3, 3]  # 32 + 32 + 6: the last batch is shared too...
    for i, (xb, yb) in enumerate(whole):
        assert torch.equal(torch.cat([p[i][0] for p in parts]), xb)
        assert torch.equal(torch.cat([p[i][1] for p in parts]), yb)
    two = list(
        Batches(data.train_x[:65], data.train_y[:65], 32, data.mean, data.std, shard=(1, 2), device=torch.device("cpu"))
    )
    assert len(two) == 2  # ...while a last batch of 1 image, fewer than the ranks, is left out on all of them


def test_batch_must_divide_among_ranks():
    distributed.check_batch(128, distributed.World(rank=0, size=2))
    with pytest.raises(PrunekitError, match=r"--batch-size 127 \(the global batch\) does not divide among 2 ranks"):
        distributed.check_batch(127, distributed.World(rank=0, size=2))


def test_resume_under_another_world_size_is_refused(tmp_path, capsys):
    code, _, _ = run_cli(
        ["run", "--method", "standard", "--epochs", "2", *FAST, "--out", str(tmp_path), "--name", "r"], capsys
    )
    assert code == 0
    config = tmp_path / "r" / "config.json"
    saved = json.loads(config.read_text())
    assert saved["world_size"] == 1 and saved["rank_batch_size"] is None
    config.write_text(json.dumps({**saved, "world_size": 2, "rank_batch_size": 32}))
    (tmp_path / "r" / "summary.json").unlink()
    before = (tmp_path / "r" / "metrics.jsonl").read_text()
    code, out, err = run_cli(["run", "--resume", str(tmp_path / "r")], capsys)
    assert code == 2 and "was trained by 2 rank(s) and is resumed by 1" in out + err
    assert (tmp_path / "r" / "metrics.jsonl").read_text() == before


def test_bench_is_refused_under_torchrun(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, out, err = run_cli(["bench", "--methods", "standard", "--out", str(tmp_path / "g")], capsys)
    assert code == 2 and "cannot run under torchrun" in out + err
    assert not (tmp_path / "g").exists()


@pytest.mark.slow
def test_two_ranks_take_identical_pruning_steps(tmp_path):
    """After every drop and restore, both ranks hold bitwise-identical parameters, buffers, masks and
    optimizer state, and agreed before rank 0's state was broadcast (no warning): a weight ranker
    with random re-init (repr) and a data ranker (taylor). Both destroy the process group at exit."""
    result = torchrun([str(HERE / "ddp_worker.py"), str(tmp_path), "repr", "prune-taylor"], tmp_path)
    assert result.returncode == 0, said(result)
    ranks = [json.loads((tmp_path / f"digests_rank{r}.json").read_text()) for r in (0, 1)]
    for method, events in (("repr", ["drop", "restore"]), ("prune-taylor", ["drop"])):
        assert [e["event"] for e in ranks[0][method]["events"]] == events
        assert ranks[0][method] == ranks[1][method]  # digests, dropped filters and (no) warnings
        assert ranks[0][method]["warnings"] == []
        assert any(any(d) for d in ranks[0][method]["events"][0]["dropped"])
    for r in (0, 1):  # each rank left the group before interpreter shutdown (gloo may abort there)
        assert json.loads((tmp_path / f"group_at_exit_rank{r}.json").read_text()) == {"initialized": False}


@pytest.mark.slow
def test_two_ranks_match_one_process_and_resume_after_a_rank_dies(tmp_path):
    """Two ranks of 32 against one process of 64, the same run: the same filters dropped and restored,
    per-epoch losses and final weights equal within 1e-4. c2_8 has no BatchNorm, so the only difference
    is float32 summation order (two half-batch means averaged against one mean over 64): measured
    ~2e-6 on the weights after 4 epochs; a wrong shard or a missing average moves them by >1e-2.
    Then a 2-rank run whose rank 1 is killed resumes under torchrun and ends with exactly the records
    of the uninterrupted one."""
    args = ["--method", "repr", "--s1", "1", "--s2", "1", "--out", str(tmp_path)]
    one = subprocess.run(
        [sys.executable] + RUN + args + ["--epochs", "4", "--name", "one"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = torchrun(RUN + args + ["--epochs", "4", "--name", "two"], tmp_path)
    assert two.returncode == 0, said(two)
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert (config["world_size"], config["rank_batch_size"], config["batch_size"]) == (2, 32, 64)
    m1, m2 = read_jsonl(tmp_path / "one" / "metrics.jsonl"), read_jsonl(tmp_path / "two" / "metrics.jsonl")
    assert len(m1) == len(m2) == 4
    for a, b in zip(m1, m2):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4 and abs(a["test_loss"] - b["test_loss"]) < 1e-4
    e1, e2 = read_jsonl(tmp_path / "one" / "events.jsonl"), read_jsonl(tmp_path / "two" / "events.jsonl")
    assert [(e["event"], e.get("dropped")) for e in e1] == [(e["event"], e.get("dropped")) for e in e2]
    w1 = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=False)["model"]
    w2 = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=False)["model"]
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-4

    epochs = ["--epochs", "60"]
    full = torchrun(RUN + args + epochs + ["--name", "full"], tmp_path)
    assert full.returncode == 0, said(full)
    proc = subprocess.Popen(
        TORCHRUN + RUN + args + epochs + ["--name", "cut"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, "the 2-rank run ended before it could be cut"
        time.sleep(0.05)
    os.kill(_rank_pid(proc.pid, 1), signal.SIGKILL)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0
    done = read_jsonl(metrics)
    assert 3 <= len(done) < 60 and not (tmp_path / "cut" / "summary.json").exists()
    assert "rank 0:" in output and "--resume" in output and "[rank0]" not in output  # one line, no traceback
    resumed = torchrun(["-m", "prunekit", "run", "--resume", str(tmp_path / "cut"), "--quiet"], tmp_path)
    assert resumed.returncode == 0, said(resumed)
    drop = lambda rows: [{k: v for k, v in r.items() if "seconds" not in k and k != "images_per_s"} for r in rows]
    assert drop(read_jsonl(metrics)) == drop(read_jsonl(tmp_path / "full" / "metrics.jsonl"))
    assert drop(read_jsonl(tmp_path / "cut" / "events.jsonl")) == drop(read_jsonl(tmp_path / "full" / "events.jsonl"))


def _rank_pid(agent_pid: int, rank: int) -> int:
    """The pid of the worker process that torchrun started for ``rank``."""
    for child in Path(f"/proc/{agent_pid}/task/{agent_pid}/children").read_text().split():
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(child)
    raise AssertionError(f"torchrun has no worker of rank {rank}")


def test_more_ranks_on_a_machine_than_gpus_is_one_line_before_joining(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    joined = []
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kw: joined.append(kw))
    with pytest.raises(PrunekitError, match="torchrun started 4 ranks on this machine but it has 2 GPU"):
        distributed.setup("cuda")
    with pytest.raises(PrunekitError, match="--device cuda:1 names one GPU"):
        distributed.setup("cuda:1")
    assert joined == [] and not distributed.world().distributed
