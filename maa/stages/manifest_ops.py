"""Building manifests: scan a folder, import other toolkits' lists, summarise.

Every function returns ``(manifest, failures)`` where ``failures`` is a DataFrame of
``audio_path, error`` for files that could not be used; the caller writes both.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from maa.audio import AUDIO_EXTENSIONS, audio_info, find_audio_files
from maa.captions import sidecar_texts
from maa.errors import AudioError, MaaError, ManifestError
from maa.manifest import REQUIRED, coerce, relative_to, resolve_path


def assign_split(key: str, valid_fraction: float, test_fraction: float) -> str:
    """Deterministic split from a hash of ``key`` (same file → same split on every run)."""
    if not 0 <= valid_fraction + test_fraction < 1:
        raise MaaError("--valid-fraction + --test-fraction must be in [0, 1)")
    u = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return (
        "test" if u < test_fraction else "valid" if u < test_fraction + valid_fraction else "train"
    )


def _rows(
    items: Iterable[tuple[Path, dict]], out_dir: Path, valid: float, test: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read each file's header; good files become rows, bad ones failures."""
    rows, failures = [], []
    for path, fields in items:
        rel = relative_to(path, out_dir)
        try:
            info = audio_info(path)
        except AudioError as exc:
            failures.append({"audio_path": rel, "error": str(exc)})
            continue
        row = {
            "audio_path": rel,
            "caption": "",
            "duration": info.duration,
            "sample_rate": info.sample_rate,
            "source": "",
            "split": "",
            **fields,
        }
        row["caption"] = " ".join(str(row["caption"]).split())
        if pd.isna(row["duration"]):  # not in the imported list, or not a number there
            row["duration"] = info.duration
        if not row["split"]:
            row["split"] = assign_split(rel, valid, test)
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else list(REQUIRED))
    return coerce(df), pd.DataFrame(failures, columns=["audio_path", "error"])


def scan(
    audio_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    source: str | None = None,
    valid_fraction: float = 0.0,
    test_fraction: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A manifest of every audio file below ``audio_dir``; a clip's caption is the first of its
    sidecar texts (:func:`maa.captions.sidecar_texts`, the rule ``maa distill`` reads too)."""
    audio_dir = Path(audio_dir)
    files = find_audio_files(audio_dir)
    if not files:
        raise MaaError(
            f"{audio_dir}: no audio files found (looked for {', '.join(AUDIO_EXTENSIONS)})"
        )
    src = source or audio_dir.resolve().name
    items = ((p, {"caption": (sidecar_texts(p) or [""])[0], "source": src}) for p in files)
    return _rows(items, Path(out_dir), valid_fraction, test_fraction)


def import_file(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    audio_dir: str | os.PathLike[str] | None = None,
    split: str = "train",
    source: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Import the official Make-An-Audio TSV, an AudioCaps CSV or an audiocraft JSONL."""
    path = Path(path)
    if not path.is_file():
        raise MaaError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        items = list(_audiocraft_items(path, split, source))
    else:
        sep = "\t" if suffix == ".tsv" else ","
        try:
            table = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        except Exception as exc:
            raise ManifestError(
                f"{path}: not a readable {'TSV' if sep == chr(9) else 'CSV'} ({exc})"
            ) from exc
        cols = set(table.columns)
        if {"name", "caption", "audio_path"} <= cols:
            items = list(_official_items(path, table, audio_dir, split, source))
        elif "caption" in cols and cols & {"youtube_id", "audiocap_id"}:
            if audio_dir is None:
                raise MaaError(
                    f"{path}: an AudioCaps list names clips by id; pass --audio-dir with the "
                    "downloaded clips (files named <youtube_id>.wav, Y<youtube_id>.wav or "
                    "<audiocap_id>.wav)"
                )
            items = list(_audiocaps_items(table, Path(audio_dir), split, source or "audiocaps"))
        else:
            raise ManifestError(
                f"{path}: unrecognised columns {sorted(cols)}; expected the Make-An-Audio TSV "
                "(name, dataset, caption, audio_path, mel_path, duration) or an AudioCaps CSV "
                "(audiocap_id/youtube_id, caption)"
            )
    if not items:
        raise MaaError(f"{path}: no rows to import")
    return _rows(items, Path(out_dir), 0.0, 0.0)


def _official_items(path, table, audio_dir, split, source):
    root = Path(audio_dir) if audio_dir else path.parent
    for _, r in table.iterrows():
        fields = {
            "caption": r["caption"],
            "source": source or r.get("dataset", "") or path.stem,
            "split": split,
            "duration": pd.to_numeric(r.get("duration", ""), errors="coerce"),
        }
        yield resolve_path(r["audio_path"], root), fields


def _audiocaps_items(table, audio_dir: Path, split, source):
    index = {p.stem: p for p in reversed(find_audio_files(audio_dir))}  # first file of a stem
    for _, r in table.iterrows():
        ids = [r.get("youtube_id", ""), "Y" + r.get("youtube_id", ""), r.get("audiocap_id", "")]
        hit = next((index[i] for i in ids if i and i in index), None)
        where = hit or audio_dir / f"{r.get('youtube_id') or r.get('audiocap_id')}.wav"
        yield where, {"caption": r["caption"], "source": source, "split": split}


def _audiocraft_items(path: Path, split, source):
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                audio = resolve_path(rec["path"], path.parent)
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ManifestError(
                    f"{path}:{lineno}: expected a JSON object with a 'path' field ({exc})"
                ) from exc
            caption = rec.get("description") or rec.get("caption")
            caption = caption or (sidecar_texts(audio) or [""])[0]
            fields = {"caption": caption, "source": source or path.stem, "split": split}
            if rec.get("duration") is not None:
                fields["duration"] = float(rec["duration"])
            yield audio, fields


def summarize(df: pd.DataFrame) -> dict:
    """Counts, hours and caption statistics of a manifest."""
    captions = df["caption"].fillna("")
    words = captions.str.split().map(len)
    has = captions.str.strip() != ""
    return {
        "clips": len(df),
        "hours": float(df["duration"].sum() / 3600.0),
        "duration_s": {
            k: float(getattr(df["duration"], k)()) if len(df) else 0.0
            for k in ("min", "median", "max")
        },
        "splits": {k: int(v) for k, v in df["split"].value_counts().sort_index().items()},
        "sources": {k: int(v) for k, v in df["source"].value_counts().head(10).items()},
        "sample_rates": {int(k): int(v) for k, v in df["sample_rate"].value_counts().items()},
        "captioned": int(has.sum()),
        "unique_captions": int(captions[has].nunique()),
        "words_per_caption": float(words[has].mean()) if has.any() else 0.0,
        "extra_columns": [c for c in df.columns if c not in REQUIRED],
    }
