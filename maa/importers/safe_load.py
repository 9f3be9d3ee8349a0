"""Reading training checkpoints (pickles) without running code from them.

A ``.ckpt`` / ``.pt`` file is a Python pickle, and an unrestricted unpickle can run any code the
file names. :func:`load_checkpoint` only uses ``torch.load(..., weights_only=True)``: tensors,
containers, numbers and strings, plus the few extra globals in :data:`ALLOWED_GLOBALS` that
Lightning checkpoints carry in their training state (numpy scalars and dtypes, e.g. a monitored
metric). A file that needs anything else is refused with an error that names those globals;
it is never loaded "the unsafe way".
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maa.errors import MaaError


def _numpy_globals() -> list[Any]:
    """numpy's scalar reconstructor and dtypes: plain numbers, as a metric logged by Lightning."""
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32")]
    allowed: list[Any] = [scalar, np.dtype, *dtypes]
    if scalar.__module__ != "numpy.core.multiarray":  # numpy 2 reading a numpy 1 pickle
        allowed.append((scalar, "numpy.core.multiarray.scalar"))
    return allowed


ALLOWED_GLOBALS: list[Any] = _numpy_globals()


def load_checkpoint(path: str | Path, what: str) -> Any:
    """The object pickled in ``path`` (``what`` names it in errors), tensors on the CPU, read with
    ``weights_only=True`` and :data:`ALLOWED_GLOBALS` only."""
    path = Path(path)
    if not path.is_file():
        raise MaaError(f"{what} {path} does not exist")
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        names = _unsafe_globals(path, str(exc))
        if not names:  # not a pickle at all, or a damaged one
            raise MaaError(
                f"{what} {path}: not a readable torch checkpoint (torch.load could not unpickle "
                "it: a damaged or truncated file, or not a checkpoint)"
            ) from None
        raise MaaError(
            f"{what} {path}: refused to unpickle it: it needs Python globals outside the safe "
            f"allow-list: {', '.join(names)}. maa only loads checkpoints with "
            "torch.load(weights_only=True) and never runs code from a file; re-save the weights "
            "as a plain state dict (torch.save({'state_dict': sd}, ...)) where you trust the file"
        ) from None
    except Exception as exc:  # torch's other ways of failing on a file that is not a checkpoint
        raise MaaError(
            f"{what} {path}: not a readable torch checkpoint ({type(exc).__name__}: {_first(exc)})"
        ) from None


def _unsafe_globals(path: Path, message: str) -> list[str]:
    """The globals outside the allow-list: from torch's scan of the archive, else its message."""
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        allowed = {g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}"
                   for g in ALLOWED_GLOBALS}  # fmt: skip
        names = [n for n in found if n not in allowed]
        if names:
            return sorted(names)
    except Exception:  # legacy (non-zip) files: fall back to the message
        pass
    return sorted(set(re.findall(r"GLOBAL ([\w.]+)", message)))


def _first(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "Unsupported global" in line or "WeightsUnpickler" in line:
            return line[:300]
    return lines[0][:300] if lines else type(exc).__name__
