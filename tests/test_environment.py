"""What a run records of the code and machine that trained it (prunekit/environment.py)."""

import shutil
import subprocess

import pytest
import torch

from prunekit import environment
from prunekit.device import configure_cuda, cuda_settings
from prunekit.environment import code_version, parse_cpuinfo

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True
    )


@needs_git
def test_commit_and_edits_of_prunekits_own_checkout(tmp_path, monkeypatch):
    code = tmp_path / "repo" / "prunekit"
    code.mkdir(parents=True)
    (code / "__init__.py").write_text("")
    git(tmp_path / "repo", "init", "-q")
    git(tmp_path / "repo", "add", ".")
    git(tmp_path / "repo", "commit", "-qm", "first")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=code, capture_output=True, text=True).stdout.strip()
    monkeypatch.setattr(environment, "_CODE", code.resolve())
    assert code_version()["commit"] == head and code_version()["code_modified"] is False
    (code / "engine.py").write_text("# a new file is an edit too\n")
    assert code_version()["code_modified"] is True


@needs_git
def test_no_commit_where_prunekit_is_not_the_checkout(tmp_path, monkeypatch):
    # installed into a virtual environment inside some other project's repository
    code = tmp_path / "project" / ".venv" / "lib" / "prunekit"
    code.mkdir(parents=True)
    git(tmp_path / "project", "init", "-q")
    git(tmp_path / "project", "commit", "-qm", "empty", "--allow-empty")
    monkeypatch.setattr(environment, "_CODE", code.resolve())
    assert code_version()["commit"] is None and code_version()["code_modified"] is None
    plain = tmp_path / "site-packages" / "prunekit"  # installed from a wheel, no repository at all
    plain.mkdir(parents=True)
    monkeypatch.setattr(environment, "_CODE", plain.resolve())
    assert code_version()["commit"] is None and code_version()["prunekit"]


def test_bf16_support_is_read_from_x86_flags_or_arm_features():
    x86 = "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse2 avx512f avx512_bf16\n"
    assert parse_cpuinfo(x86) == ("AMD EPYC 9B14", True)
    assert parse_cpuinfo(x86.replace(" avx512_bf16", ""))[1] is False
    arm = "processor\t: 0\nBogoMIPS\t: 2000.00\nFeatures\t: fp asimd sve bf16 i8mm\nCPU part\t: 0xd4f\n"
    assert parse_cpuinfo(arm)[1] is True
    assert parse_cpuinfo("processor\t: 0\n")[1] is None  # neither list: unknown, not "no"


def test_changes_name_what_can_move_a_runs_numbers_and_ignore_timing():
    before = {
        "from_epoch": 0,
        "prunekit": "0.1.0",
        "commit": "a" * 40,
        "code_modified": False,
        "torch": "2.14.1",
        "device": "cpu",
        "cpu": "AMD EPYC",
        "threads": 2,
        "time": "2026-12-01T00:00:00Z",
    }
    assert environment.changes(before, {**before, "from_epoch": 5, "threads": 1, "time": "later"}) == []
    assert environment.changes(before, {**before, "commit": "b" * 40}) == ["commit aaaaaaa -> bbbbbbb"]
    assert environment.changes(before, {**before, "code_modified": True}) == [
        "uncommitted changes to prunekit's code now"
    ]
    assert environment.changes({**before, "code_modified": True}, before) == [
        "uncommitted changes to prunekit's code then"
    ]
    assert environment.changes(before, {**before, "commit": None}) == []  # a wheel install: no commit to compare
    assert environment.changes(before, {**before, "device": "cuda:0", "gpu": "H200"}) == [
        "device cpu -> cuda:0",
        "GPU none -> H200",
    ]
    on_gpu = {**before, "device": "cuda:0", "gpu": "H200"}
    assert environment.changes(on_gpu, {**on_gpu, "cpu": "Intel Xeon"}) == []  # the host of a GPU run is not the math
    assert environment.changes(before, {**before, "cpu": "Intel Xeon"}) == ["CPU AMD EPYC -> Intel Xeon"]


@pytest.fixture
def cuda_flags_restored():
    """configure_cuda sets process-wide flags (it needs no GPU to set them); put them back for other tests."""
    flags = [
        (torch.backends.cudnn.conv, "fp32_precision"),
        (torch.backends.cudnn.rnn, "fp32_precision"),
        (torch.backends.cuda.matmul, "fp32_precision"),
        (torch.backends.cudnn, "deterministic"),
        (torch.backends.cudnn, "benchmark"),
    ]
    saved = [getattr(owner, name) for owner, name in flags]
    yield
    for (owner, name), value in zip(flags, saved):
        setattr(owner, name, value)


def test_cuda_fp32_is_ieee_not_tf32_and_cudnn_is_deterministic(cuda_flags_restored):
    torch.backends.cudnn.conv.fp32_precision = "tf32"  # PyTorch's default for cuDNN convolutions
    torch.backends.cudnn.deterministic = False
    configure_cuda()
    assert torch.backends.cudnn.conv.fp32_precision == "ieee" and torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert cuda_settings() == {"cudnn_conv_fp32": "ieee", "matmul_fp32": "ieee", "cudnn_deterministic": True}
