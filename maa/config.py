"""Config dataclasses ⇄ JSON, the one way bundle.json, weights' metadata and training state hold
them: tuples become lists and come back from the field types; missing fields take their defaults
(older bundles load); unknown fields are an error, never silently dropped."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from maa.errors import MaaError

C = TypeVar("C")


class Config:
    """Mixin of every config dataclass: ``to_dict()``, ``from_dict()`` and ``override()``."""

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-able dict (tuples, nested ones too, become lists)."""
        return {k: _lists(v) for k, v in dataclasses.asdict(self).items()}

    def settings_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` less the fields named in the class's ``LATER_FIELDS`` that hold their
        defaults: what a training run saves to compare on ``--resume``, so a run saved before a
        field existed still resumes when the field is left at its default."""
        later = getattr(type(self), "LATER_FIELDS", ())
        out = self.to_dict()
        for f in dataclasses.fields(self):
            default = f.default
            if (
                f.name in later
                and default is not dataclasses.MISSING
                and (out[f.name] == _lists(default))
            ):
                del out[f.name]
        return out

    @classmethod
    def from_dict(
        cls: type[C], data: Mapping[str, Any], what: str = "", error: type[MaaError] = MaaError
    ) -> C:
        """``cls`` rebuilt from :meth:`to_dict` output. An unknown or missing field raises
        ``error`` (``BundleError`` for a bundle) naming it, ``cls`` and ``what`` held the data."""
        where = f"{what}: {cls.__name__}" if what else cls.__name__
        if not isinstance(data, Mapping):
            raise error(f"{where} must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise error(
                f"{where} has unknown field(s) {', '.join(unknown)}; upgrade maa to read it"
            )
        types = typing.get_type_hints(cls)
        try:
            return cls(**{k: _restore(types[k], v) for k, v in data.items()})
        except TypeError as exc:  # a field without default is missing
            raise error(f"{where} is incomplete ({exc})") from None

    def override(self: C, **values: Any) -> C:
        """A copy with those ``values`` that are not None (CLI options left unset are None)."""
        return dataclasses.replace(self, **{k: v for k, v in values.items() if v is not None})


def _lists(value: Any) -> Any:
    return [_lists(v) for v in value] if isinstance(value, (list, tuple)) else value


def _restore(tp: Any, value: Any) -> Any:
    """JSON ``value`` as field type ``tp``: lists become tuples (``tuple[X, ...]`` or fixed)."""
    if typing.get_origin(tp) is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(tp)
        kinds = args[:1] * len(value) if args[-1:] == (...,) else args
        if len(kinds) != len(value):  # a fixed-size tuple field with too few or too many items
            raise TypeError(f"expected {len(kinds)} values for a {tp}, got {len(value)}")
        return tuple(_restore(k, v) for k, v in zip(kinds, value, strict=True))
    return bool(value) if tp is bool else value
