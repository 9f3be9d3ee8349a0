"""A small, category-balanced slice of a corpus laid out as a user's own audio would be.

``maa corpus slice`` (used by ``make demo``) copies up to N train clips of each chosen category
into ``OUT/audio/<category>/`` — a folder ``maa distill --audio-dir`` can caption from scratch —
and the test clips of those categories into ``OUT/test/<category>/`` with a manifest
``OUT/test.parquet`` (their corpus captions) to evaluate against. ``OUT/sources.parquet`` lists
every copied clip with its source package, original path and licence.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from maa.errors import MaaError, ManifestError, check_count
from maa.manifest import audio_paths, read_manifest, relative_to, write_manifest


@dataclass
class SliceReport:
    train: dict[str, int]
    test: dict[str, int]
    out: Path


def slice_corpus(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    categories: list[str],
    per_category: int,
    seed: int = 0,
) -> SliceReport:
    """Copy a balanced slice of ``manifest`` (a ``maa corpus`` manifest) into ``out``."""
    if per_category < 1:
        check_count("--per-category", per_category)
    df = read_manifest(manifest)
    if "category" not in df.columns:
        raise ManifestError(f"{manifest}: no 'category' column; is this a `maa corpus` manifest?")
    known = set(df["category"])
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise MaaError(
            f"{manifest}: no clips of categor{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(unknown)}; it has {', '.join(sorted(known))}"
        )
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise MaaError(f"{out}: folder is not empty; pass a new --out folder or remove it")
    df = df.assign(_src=[str(p) for p in audio_paths(df)])
    picked, report = [], SliceReport({}, {}, out)
    for c in categories:
        rows = df[df["category"] == c]
        train = rows[rows["split"] == "train"]
        train = train.sample(n=min(per_category, len(train)), random_state=seed)
        test = rows[rows["split"] == "test"]
        report.train[c], report.test[c] = len(train), len(test)
        picked.append(_copy(train, out / "audio" / _folder(c)))
        picked.append(_copy(test, out / "test" / _folder(c)))
    sources = pd.concat(picked, ignore_index=True)
    sources["audio_path"] = [relative_to(p, out) for p in sources.pop("_dst")]
    sources = sources.drop(columns="_src")
    write_manifest(sources, out / "sources.parquet")
    write_manifest(sources[sources["split"] == "test"], out / "test.parquet")
    return report


def _folder(category: str) -> str:
    """A category as a folder name the label expert reads back ("big cat" → "big_cat")."""
    return category.replace(" ", "_").replace("/", "_")


def _copy(rows: pd.DataFrame, folder: Path) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    dst = []
    for i, src in enumerate(rows["_src"]):
        # short names, as a user's own folder would have: the folder is the label to find
        target = folder / f"{folder.name}_{i:03d}{Path(src).suffix}"
        shutil.copyfile(src, target)
        dst.append(str(target))
    return rows.assign(_dst=dst)
