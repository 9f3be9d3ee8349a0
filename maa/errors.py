"""User-facing errors.

A :class:`MaaError` carries a message a user can act on (which file, which column, what was
expected, what to pass instead). The CLI prints it without a traceback and exits with code 2.
"""

import errno
import numbers
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar

V = TypeVar("V")


class MaaError(Exception):
    """An error caused by the user's input or environment, with an actionable message."""


class AudioError(MaaError):
    """An audio file that cannot be read or is unusable (empty, silent, NaN)."""


class ManifestError(MaaError):
    """A manifest that is missing columns, has wrong types or bad rows."""


class BundleError(MaaError):
    """A bundle folder that is missing a component or whose weights do not match its config."""


def choose(table: Mapping[str, V], name: str, what: str, order: Iterable[str] | None = None) -> V:
    """``table[name]``, or a :class:`MaaError` naming ``what`` was unknown and the choices."""
    try:
        return table[name]
    except KeyError:
        choices = ", ".join(order if order is not None else table)
        raise MaaError(f"unknown {what} {name!r}; choose one of {choices}") from None


class ResourceError(MaaError):
    """The operating system refused: out of space, permission denied, read-only, too many files."""


class NotEnoughSpace(ResourceError):
    """Found before any work started: the output's file system has too little free space."""


# errno → what to tell the user (the path and the remedy are added by :func:`system_error`)
_OS_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.EMFILE: "too many open files (raise the limit with `ulimit -n`)",
    errno.ENFILE: "the system's open-file table is full",
}
# libraries that lose errno on the way up still say what happened in their message
_TEXT_REASONS = (
    ("no space left", errno.ENOSPC),
    ("disk quota", errno.EDQUOT),
    ("read-only file system", errno.EROFS),
    ("permission denied", errno.EACCES),
    ("too many open files", errno.EMFILE),
)


def _errno_of(exc: BaseException) -> int | None:
    if isinstance(exc, OSError) and exc.errno in _OS_REASONS:
        return exc.errno
    text = str(exc).lower()
    return next((code for words, code in _TEXT_REASONS if words in text), None)


def system_error(
    exc: BaseException, where: str | os.PathLike[str] | None = None
) -> ResourceError | None:
    """A one-line :class:`ResourceError` for an operating-system refusal anywhere in ``exc``'s
    chain (its causes and contexts), or ``None`` when the failure is something else.

    ``where`` names the file or folder being written when the exception does not (libsndfile and
    torch drop the path and sometimes the errno too).
    """
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        code = _errno_of(node)
        if code is not None:
            path = getattr(node, "filename", None) or where
            place = f"{path}: " if path else ""
            extra = ""
            if code in (errno.ENOSPC, errno.EDQUOT) and path:
                extra = f" ({free_space_text(path)})"
            return ResourceError(
                f"{place}{_OS_REASONS[code]}{extra}; nothing was overwritten — free space or "
                "choose another folder, then run the command again"
                if code in (errno.ENOSPC, errno.EDQUOT)
                else f"{place}{_OS_REASONS[code]}"
            )
        node = node.__cause__ or node.__context__
    return None


def free_space_text(path: str | os.PathLike[str]) -> str:
    """``'1.2 MB free on /mnt/x'`` for the file system holding ``path`` (or its nearest parent)."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return "free space unknown"
    return f"{format_bytes(usage.free)} free in {folder}"


def format_bytes(n: float) -> str:
    """``1536 → '1.5 kB'`` (decimal units, as disk tools report)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def ensure_free_space(folder: str | os.PathLike[str], needed: int, what: str) -> None:
    """Fail before long work when ``folder``'s file system has less than ``needed`` bytes free
    (with a 10 % margin); ``what`` says what would be written ("training checkpoints", …)."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # cannot tell: let the write itself report
    if free < needed * 1.1:
        raise NotEnoughSpace(
            f"{folder}: not enough free space for {what}: about {format_bytes(needed)} needed, "
            f"{format_bytes(free)} free in {probe}; free space or choose another folder"
        )


def check_count(option: str, value: object, minimum: int = 1, maximum: int | None = None) -> int:
    """Every count option is checked by this one rule: a whole number in ``minimum..maximum``;
    the error names the option and the allowed range."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum
    ok = ok and (maximum is None or value <= maximum)  # type: ignore[operator]
    if not ok:
        allowed = f"≥ {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise MaaError(f"{option} must be a whole number {allowed}, got {value!r}")
    return value  # type: ignore[return-value]
