"""Parquet manifests: one row per clip.

Required columns (see ``data_manifests/README.md``):

=============  =======  ==========================================================
column         type     meaning
=============  =======  ==========================================================
audio_path     string   relative to the manifest's folder, or absolute
caption        string   text description ("" when unknown)
duration       float64  seconds
sample_rate    int64    Hz, of the file on disk
source         string   where the clip came from (dataset, package, folder)
split          string   train / valid / test
=============  =======  ==========================================================

Stages add columns (``candidates``, ``clap_score``, ``template``, ``components``, ``license``,
``error`` …). Writes are atomic; relative paths resolve against the manifest's folder. What a
batch stage could not use goes to a Parquet *side file* beside its output (:func:`side_file`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from maa.errors import ManifestError
from maa.fsutil import atomic_path

REQUIRED: dict[str, str] = {
    "audio_path": "string",
    "caption": "string",
    "duration": "float",
    "sample_rate": "int",
    "source": "string",
    "split": "string",
}
SPLITS = ("train", "valid", "test")
ROOT_ATTR = "manifest_root"


def empty_manifest() -> pd.DataFrame:
    """A manifest with the required columns and no rows."""
    return coerce(pd.DataFrame({c: [] for c in REQUIRED}))


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Cast the required columns to their schema types (strings stay Python ``str``)."""
    df = df.copy()
    for col, kind in REQUIRED.items():
        if col not in df.columns:
            continue
        if kind == "string":
            df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
        elif kind == "float":
            df[col] = df[col].astype("float64")
        elif kind == "int":
            df[col] = df[col].astype("int64")
    return df


def validate(df: pd.DataFrame, name: str = "manifest", required: dict[str, str] = REQUIRED) -> None:
    """Check columns and types; raise :class:`ManifestError` naming the bad column and row."""
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ManifestError(
            f"{name}: missing column(s) {', '.join(missing)}; a manifest needs "
            f"{', '.join(required)} (see data_manifests/README.md)"
        )
    for col, kind in required.items():
        series = df[col]
        if kind == "string":
            bad = series.map(lambda v: not isinstance(v, str))
            what = "a string"
        else:
            numeric = pd.to_numeric(series, errors="coerce")
            bad = numeric.isna()
            if kind == "int":
                bad |= numeric.notna() & (numeric != numeric.round())
            what = "an integer" if kind == "int" else "a number"
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            value = series.iloc[row]
            value = value.item() if hasattr(value, "item") else value  # numpy scalar → Python
            raise ManifestError(
                f"{name}: column {col!r} row {row} holds {value!r}; expected {what}"
            )
    paths = df["audio_path"]
    if (paths == "").any():
        row = int((paths == "").to_numpy().nonzero()[0][0])
        raise ManifestError(f"{name}: column 'audio_path' row {row} is empty")
    durations = pd.to_numeric(df["duration"])
    if (durations < 0).any():
        row = int((durations < 0).to_numpy().nonzero()[0][0])
        raise ManifestError(f"{name}: column 'duration' row {row} is negative")


def read_manifest(path: str | os.PathLike[str], *, validate_schema: bool = True) -> pd.DataFrame:
    """Read a Parquet manifest; ``df.attrs['manifest_root']`` holds its folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest; pass a .parquet file written by maa")
    try:
        df = pq.read_table(str(path)).to_pandas()
    except Exception as exc:
        raise ManifestError(f"{path}: not a readable Parquet file ({exc})") from exc
    if validate_schema:
        validate(df, str(path))
        df = coerce(df)
    df.attrs[ROOT_ATTR] = str(path.resolve().parent)
    return df


def write_manifest(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Validate and write ``df`` to ``path`` atomically (Parquet, zstd)."""
    path = Path(path)
    validate(df, str(path))
    df = coerce(df).reset_index(drop=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(
        {k: v for k, v in (table.schema.metadata or {}).items() if k != b"pandas"}
        | {b"maa_manifest": b"1"}
    )
    with atomic_path(path) as tmp:
        pq.write_table(table, str(tmp), compression="zstd")
    return path


def manifest_root(df: pd.DataFrame) -> Path:
    """Folder that relative ``audio_path`` values are resolved against."""
    return Path(df.attrs.get(ROOT_ATTR, "."))


def resolve_path(audio_path: str, root: str | os.PathLike[str]) -> Path:
    """An ``audio_path`` value as a filesystem path (absolute ones are kept)."""
    p = Path(audio_path)
    return p if p.is_absolute() else Path(root) / p


def audio_paths(df: pd.DataFrame) -> list[Path]:
    """Every row's audio file as a path."""
    root = manifest_root(df)
    return [resolve_path(p, root) for p in df["audio_path"]]


def relative_to(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """``path`` relative to ``root`` when it lies below it, else absolute (POSIX separators)."""
    path = Path(path).resolve()
    try:
        return path.relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def select_split(df: pd.DataFrame, split: str | None) -> pd.DataFrame:
    """Rows of one split (all rows for ``None``); an empty result is an error naming the split."""
    if split is None:
        return df
    out = df[df["split"] == split]
    if out.empty:
        counts = df["split"].value_counts().to_dict()
        raise ManifestError(f"manifest has no rows with split={split!r} (splits present: {counts})")
    out.attrs.update(df.attrs)
    return out


def side_file(out: str | os.PathLike[str], kind: str) -> Path:
    """The Parquet side file ``kind`` beside an output: (``m.parquet``, ``"errors"``) →
    ``m.errors.parquet``; (``report.json``, ``"files"``) → ``report.files.parquet``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.{kind}.parquet")


def write_side_table(
    rows: list[dict] | pd.DataFrame, out: str | os.PathLike[str], kind: str
) -> Path | None:
    """Write ``rows`` atomically to ``side_file(out, kind)`` and return that path; with no rows,
    remove a stale one (a resumed run whose old failures are now fixed) and return None."""
    path = side_file(out, kind)
    if len(rows) == 0:
        path.unlink(missing_ok=True)
        return None
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False), str(tmp))
    return path
