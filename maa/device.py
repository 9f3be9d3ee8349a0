"""Device and dtype selection with clear errors."""

from __future__ import annotations

import torch

from maa.errors import MaaError

DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}


def best_device() -> str:
    """``cuda`` if a GPU is visible, else ``mps`` on Apple silicon, else ``cpu``."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_device(name: str | None) -> torch.device:
    """Turn ``auto``/``None``/``cpu``/``cuda[:N]``/``mps`` into a device, checking it exists."""
    if name in (None, "", "auto"):
        return torch.device(best_device())
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MaaError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MaaError(
                "--device cuda was requested but no CUDA GPU is visible; "
                "pass --device cpu (or auto)"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MaaError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise MaaError("--device mps was requested but MPS is not available; pass --device cpu")
    return device


def resolve_dtype(name: str | None, device: torch.device) -> torch.dtype:
    """``auto`` → fp32 on CPU, bf16 on CUDA with bf16 support; otherwise the named dtype."""
    if name in (None, "", "auto"):
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return DTYPES[name]
    except KeyError:
        raise MaaError(f"unknown dtype {name!r}; use auto, fp32, bf16 or fp16") from None
