"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

A killed process leaves either the old file or the new one, never a truncated mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maa.errors import MaaError, NotEnoughSpace, ResourceError, free_space_text, system_error


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` atomically.

    The parent folder must exist (we do not create folders a user did not ask for silently
    elsewhere; callers create them explicitly). On error the temporary file is removed.
    """
    target = Path(target)
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise MaaError(f"cannot write {target}: folder {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise system_error(exc, parent) or exc from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); give it the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if isinstance(exc, Exception) and not isinstance(exc, MaaError):
            # libsndfile and torch report a full disk as "System error" or "unexpected pos":
            # name the real cause, and that the previous file is untouched
            found = system_error(exc, target) or _full_disk(exc, target)
            if found is not None:
                raise found from exc
        raise


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``target`` atomically."""
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# a write that fails while this little space is left failed because the disk is full
FULL_DISK_BYTES = 1 << 20


def _full_disk(exc: Exception, target: Path) -> ResourceError | None:
    try:
        free = shutil.disk_usage(target.parent if str(target.parent) else ".").free
    except OSError:
        return None
    if free >= FULL_DISK_BYTES:
        return None
    return ResourceError(
        f"{target}: the disk is full ({free_space_text(target.parent)}; the write failed with "
        f"{type(exc).__name__}: {str(exc)[:80]}); nothing was overwritten — free space or "
        "choose another folder, then run the command again"
    )


@contextlib.contextmanager
def rollback_unless_checkpointed(folder: Path | None) -> Iterator[None]:
    """On a :class:`MaaError` (bad input found at the start), remove what was created under
    ``folder`` (and ``folder`` itself if it did not exist) — unless a training checkpoint
    (``train/*/state.pt``) was written meanwhile: then everything stays so the run can be
    resumed. A disk that fills up during the work and interruptions keep what was made (a latent
    cache that took minutes to build); too little space found before the work starts rolls back."""
    if folder is None:
        yield
        return
    existed = folder.exists()
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")} if existed else {}
    try:
        yield
    except MaaError as exc:
        if isinstance(exc, ResourceError) and not isinstance(exc, NotEnoughSpace):
            raise
        states = list(folder.glob("train/*/state.pt")) if folder.exists() else []
        if any(before.get(p) != p.stat().st_mtime_ns for p in states):
            raise
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.exists():
            for p in sorted(folder.rglob("*"), key=lambda q: len(q.parts), reverse=True):
                if p not in before:
                    with contextlib.suppress(OSError):
                        p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
        raise


def is_main_process() -> bool:
    """False on ranks > 0 of a ``torchrun`` / ``accelerate launch`` run (``RANK`` set by the
    launcher): those compute but neither write shared files nor print summaries."""
    return int(os.environ.get("RANK", "0")) == 0
