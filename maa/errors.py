"""User-facing errors.

A :class:`MaaError` carries a message a user can act on (which file, which column, what was
expected, what to pass instead). The CLI prints it without a traceback and exits with code 2.
"""

from collections.abc import Iterable, Mapping
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
