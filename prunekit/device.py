"""The device a run trains on, and the CUDA settings that keep its numbers faithful."""

from __future__ import annotations

import torch

from .errors import PrunekitError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PrunekitError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


def configure_cuda() -> None:
    """Make CUDA training do what it says, for the whole process (``cuda_settings`` reads it back).

    fp32 means IEEE fp32: PyTorch lets cuDNN convolutions run in TF32 (a 10-bit mantissa) by default, which
    would make every "fp32" GPU figure a TF32 one (bf16 autocast is the fast path, and says so). cuDNN picks
    deterministic algorithms, so a resumed or repeated run repeats the original, as it does on the CPU.
    """
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cudnn.rnn.fp32_precision = "ieee"
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def cuda_settings() -> dict:
    """The settings ``configure_cuda`` makes, as recorded with each session."""
    return {
        "cudnn_conv_fp32": torch.backends.cudnn.conv.fp32_precision,
        "matmul_fp32": torch.backends.cuda.matmul.fp32_precision,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
    }
