"""Captions outside manifests: the one sidecar rule (:func:`sidecar_texts`, read by ``manifest
scan`` and ``distill``) and the one caption-list reader (:func:`read_captions`)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from maa.errors import MaaError

# JSON sidecar keys read, in this order; a key may hold a string or a list of strings.
JSON_TEXT_KEYS = ("caption", "captions", "description", "text", "title", "label", "labels", "tags")
MAX_SIDECAR_CHARS = 300  # longer texts are descriptions or licences, not captions


def unique_texts(texts: Iterable[str]) -> list[str]:
    """Non-empty texts without case-insensitive repeats; the first spelling and order are kept."""
    first: dict[str, str] = {}  # lower-cased text -> first spelling, in insertion order
    for s in texts:
        if s:
            first.setdefault(s.lower(), s)
    return list(first.values())


def sidecar_texts(path: str | os.PathLike[str]) -> list[str]:
    """Human captions stored beside the audio file ``path``, best first.

    Files read, in this order (``clip.wav`` as the example): ``clip.txt``, ``clip.wav.txt``
    (the whole file is one text), ``clip.json``, ``clip.wav.json`` (the string values of the
    keys in :data:`JSON_TEXT_KEYS`, in that order; lists contribute every string). Each text has
    its whitespace collapsed and leading/trailing spaces and full stops stripped; texts longer
    than :data:`MAX_SIDECAR_CHARS` and case-insensitive repeats are dropped. Missing, unreadable
    or malformed sidecars contribute nothing.
    """
    path = Path(path)
    texts: list[str] = []
    for side in (path.with_suffix(".txt"), path.with_name(path.name + ".txt")):
        with contextlib.suppress(OSError):
            texts.append(side.read_text(encoding="utf-8", errors="replace"))
    for side in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        try:
            meta: Any = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict):
            for key in JSON_TEXT_KEYS:
                value = meta.get(key)
                values = value if isinstance(value, list) else [value]
                texts.extend(v for v in values if isinstance(v, str))
    cleaned = [" ".join(t.split()).strip(" .") for t in texts]
    return unique_texts(t for t in cleaned if len(t) <= MAX_SIDECAR_CHARS)


def read_captions(path: str | os.PathLike[str], what: str = "caption list") -> list[str]:
    """Captions from a text file (one per line) or a Parquet manifest (its ``caption`` column).

    Whitespace is collapsed; empty captions and text lines starting with ``#`` are dropped;
    order and repeats are kept (dedupe with :func:`unique_texts`). A missing file, a text file
    that is not UTF-8, or no caption at all is an error naming ``what`` (e.g. ``--prompts``).
    """
    path = Path(path)
    if not path.is_file():
        raise MaaError(f"{what} {path}: no such file; pass a text file or a .parquet manifest")
    if path.suffix.lower() == ".parquet":
        from maa.manifest import read_manifest

        df = read_manifest(path, validate_schema=False)
        if "caption" not in df.columns:
            raise MaaError(f"{what} {path}: the manifest has no 'caption' column")
        texts = [c for c in df["caption"] if isinstance(c, str)]
    else:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise MaaError(f"{what} {path}: not a UTF-8 text file ({exc})") from exc
        texts = [ln for ln in lines if not ln.lstrip().startswith("#")]
    captions = [c for c in (" ".join(t.split()) for t in texts) if c]
    if not captions:
        raise MaaError(f"{what} {path}: holds no captions (one per line, or a 'caption' column)")
    return captions
