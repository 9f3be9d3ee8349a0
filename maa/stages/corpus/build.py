"""``maa corpus build``: a real, licensed, labelled corpus from Debian sound packages.

Packages are fetched and unpacked by :mod:`maa.stages.corpus.sources`; the rules file
(:mod:`maa.stages.corpus.rules`, ``maa/assets/corpus_rules.tsv``) says which files become which
category and caption. Every recording is converted to mono ``sample_rate`` Hz wav, long ones
cut into ``clip_seconds`` windows, and each clip becomes a manifest row that keeps its
``source`` package, ``original_path``, ``license`` and ``category``. Splits are assigned per
category by recording (``recording`` column): every window of one recording lands in one split.

Layout of ``out_dir``: ``manifest.parquet``, ``clips/<package>/…wav``, ``parts/<package>.jsonl``
(one line per converted recording, the resume log) and, by default, ``cache/`` (.deb files and
the unpacked trees). A rerun skips recordings already in the resume log, so an interrupted or
disk-full build continues where it stopped.
"""

from __future__ import annotations

import errno
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from maa.audio import SILENCE_PEAK, peak_normalize, write_audio
from maa.errors import MaaError
from maa.manifest import write_manifest
from maa.stages.corpus.rules import RuleSet, choose_caption, parse_rules, stable_hash
from maa.stages.corpus.sources import (
    Item,
    PackageUnavailable,
    iter_windows,
    list_items,
    obtain_tree,
)

SAMPLE_RATE = 22050
CLIP_SECONDS = 5.0
DEFAULT_MAX_WINDOWS = 6
VALID_FRACTION = 0.1
TEST_FRACTION = 0.1
MIN_PEAK = 0.01  # after normalising a recording to -1 dBFS, windows below -40 dBFS are dropped
MIN_CLIP_SECONDS = 0.2  # shorter clips (single clicks) hold too few mel frames to learn from
CONVERT_VERSION = 2  # part of every resume fingerprint: bump when conversion changes


@dataclass
class CorpusReport:
    """What a build produced: the manifest, counts, and every package or file that failed."""

    manifest: Path
    rows: int = 0
    hours: float = 0.0
    categories: dict[str, int] = field(default_factory=dict)
    licenses: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)  # name → "ok (N clips)" or reason
    missing: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    elapsed: float = 0.0


def build_corpus(
    out_dir: str | Path,
    packages: list[str] | None = None,
    rules: str | Path | None = None,
    cache: str | Path | None = None,
    seed: int = 0,
    clip_seconds: float = CLIP_SECONDS,
    *,
    deb_dir: str | Path | None = None,
    sample_rate: int = SAMPLE_RATE,
    distill_clap: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> CorpusReport:
    """Build (or resume) the corpus in ``out_dir``; returns a :class:`CorpusReport`.

    Args:
        packages: only these packages of the rules file (default: all of them).
        rules: rules TSV (default: the shipped ``maa/assets/corpus_rules.tsv``).
        cache: where .deb files and unpacked trees go (default ``out_dir/cache``).
        seed: chooses caption phrases, ``max_files`` subsets, phrases and splits.
        clip_seconds: window length (s) for recordings longer than 1.5 windows.
        deb_dir: folder of ``NAME_*.deb`` files or unpacked ``NAME/`` trees to use instead of
            apt-get (for machines without apt, or offline builds).
        distill_clap: a CLAP (bundle or folder) to pick each clip's caption among the rule's
            phrases with ``maa distill``'s CLAP reranking.
    """
    t0 = time.perf_counter()
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    out_dir = Path(out_dir)
    cache = Path(cache) if cache is not None else out_dir / "cache"
    ruleset = RuleSet(parse_rules(rules))
    wanted = packages or ruleset.packages
    unknown = [p for p in wanted if p not in ruleset.packages]
    if unknown:
        raise MaaError(
            f"no rules for package(s) {', '.join(unknown)}; the rules file covers "
            f"{', '.join(ruleset.packages)}"
        )
    if clip_seconds <= 0:
        raise MaaError(f"clip_seconds must be positive, got {clip_seconds}")
    (out_dir / "parts").mkdir(parents=True, exist_ok=True)
    report = CorpusReport(manifest=out_dir / "manifest.parquet")
    rows: list[dict[str, Any]] = []
    for package in wanted:
        try:
            tree = obtain_tree(package, cache, Path(deb_dir) if deb_dir else None, ruleset, log)
        except PackageUnavailable as exc:
            log(f"skipping {exc}")
            report.packages[package] = f"missing: {exc}"
            report.missing.append(package)
            continue
        items = list_items(package, tree, ruleset, seed)
        got = _convert_package(
            package, items, out_dir, seed, clip_seconds, sample_rate, report, log
        )
        report.packages[package] = f"ok ({len(got)} clips from {len(items)} recordings)"
        rows.extend(got)
    if not rows:
        raise MaaError(
            f"the corpus is empty: no package could be used ({'; '.join(report.packages.values())})"
        )
    df = pd.DataFrame(rows)
    short = df["duration"] < MIN_CLIP_SECONDS
    if short.any():
        log(f"leaving out {int(short.sum())} clip(s) shorter than {MIN_CLIP_SECONDS} s")
        df = df[~short].reset_index(drop=True)
        if df.empty:
            raise MaaError(f"the corpus is empty: every clip is shorter than {MIN_CLIP_SECONDS} s")
    df["split"] = assign_splits(df, seed)
    df = df.sort_values(["source", "original_path", "offset"], kind="stable")
    if distill_clap is not None:
        df = distill_captions(df, out_dir, distill_clap, log)
    write_manifest(df, report.manifest)
    report.rows = len(df)
    report.hours = float(df["duration"].sum()) / 3600.0
    report.categories = dict(Counter(df["category"]).most_common())
    report.licenses = dict(Counter(df["license"]).most_common())
    report.splits = dict(Counter(df["split"]).most_common())
    report.elapsed = time.perf_counter() - t0
    return report


def _fingerprint(item: Item, seed: int, clip_seconds: float, sr: int) -> str:
    r = item.rule
    opts = sorted((k, str(v)) for k, v in r.options.items())
    parts = (r.category, r.captions, r.license, opts, seed, clip_seconds, sr, CONVERT_VERSION)
    return f"{stable_hash(*parts):x}"


def _read_log(path: Path) -> dict[str, dict[str, Any]]:
    """The resume log; a torn last line (killed mid-write, disk full) is ignored."""
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and "key" in entry:
                done[entry["key"]] = entry
    return done


def _safe_name(key: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", key.replace("!", "/").replace("#", "/"))
    return name.strip("_")[-150:]


def _convert_package(
    package: str,
    items: list[Item],
    out_dir: Path,
    seed: int,
    clip_seconds: float,
    sr: int,
    report: CorpusReport,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    log_path = out_dir / "parts" / f"{package}.jsonl"
    done = _read_log(log_path)
    rows: list[dict[str, Any]] = []
    todo = 0
    with log_path.open("a", encoding="utf-8") as journal:
        for item in items:
            fp = _fingerprint(item, seed, clip_seconds, sr)
            entry = done.get(item.key, {})
            old = entry.get("rows", [])
            if entry.get("fp") == fp and all((out_dir / r["audio_path"]).is_file() for r in old):
                rows.extend(old)
                if entry.get("error"):
                    report.failures.append((f"{package}:{item.key}", entry["error"]))
                continue
            todo += 1
            try:
                clips = _convert_item(package, item, out_dir, seed, clip_seconds, sr)
                entry = {"key": item.key, "fp": fp, "rows": clips}
            except MaaError as exc:  # an unreadable recording is recorded, the rest goes on
                entry = {"key": item.key, "fp": fp, "rows": [], "error": str(exc)}
                report.failures.append((f"{package}:{item.key}", str(exc)))
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    raise MaaError(
                        f"disk full while writing clips of {package} to {out_dir}; free space "
                        "and rerun the same command: finished recordings are kept and skipped"
                    ) from exc
                raise
            journal.write(json.dumps(entry) + "\n")
            journal.flush()
            rows.extend(entry["rows"])
    log(f"{package}: {len(rows)} clips ({todo} recordings converted now, "
        f"{len(items) - todo} reused)")  # fmt: skip
    return rows


def _convert_item(
    package: str, item: Item, out_dir: Path, seed: int, clip_seconds: float, sr: int
) -> list[dict[str, Any]]:
    wave = item.load(sr)
    rule = item.rule
    max_windows = int(rule.option("max_windows", DEFAULT_MAX_WINDOWS))  # type: ignore[arg-type]
    stem = out_dir / "clips" / package / _safe_name(item.key)
    stem.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    # normalise the whole recording, not each window: quiet passages of a loop stay quiet
    wave = peak_normalize(_trim(wave), -1.0)
    windows = list(iter_windows(wave, sr, clip_seconds, max_windows))
    for i, (offset, clip) in enumerate(windows):
        if clip.abs().max().item() < MIN_PEAK:
            continue
        path = stem.with_name(stem.name + (f"_w{i:02d}" if len(windows) > 1 else "") + ".wav")
        write_audio(path, clip, sr)
        clip_id = f"{package}:{item.key}@{offset:.2f}"
        rows.append({
            "audio_path": path.relative_to(out_dir).as_posix(),
            "caption": choose_caption(rule, clip_id, seed),
            "duration": clip.shape[-1] / sr,
            "sample_rate": sr,
            "source": package,
            "split": "",
            "category": rule.category,
            "license": rule.license,
            "original_path": item.key,
            "recording": f"{package}:{item.group}",
            "offset": float(offset),
            "phrases": list(rule.captions),
        })  # fmt: skip
    return rows


def _trim(wave: Any, margin: int = 1000) -> Any:
    """Drop leading/trailing near-silence (below -80 dBFS), keeping a short margin."""
    loud = (wave.abs() > SILENCE_PEAK).nonzero()
    if loud.numel() == 0:
        return wave
    start = max(0, int(loud[0]) - margin)
    end = min(wave.shape[-1], int(loud[-1]) + margin)
    return wave[start:end]


def assign_splits(df: pd.DataFrame, seed: int) -> pd.Series:
    """train/valid/test per row, by recording, stratified by category.

    Within each category the recordings are ordered by a seeded hash; the first ~10 % go to
    test and the next ~10 % to valid (at least one each when the category has 3+ recordings),
    so every window of one recording shares a split and most categories appear in every split.
    """
    split_of: dict[str, str] = {}
    for _, recs in df.groupby("category", sort=True)["recording"]:
        ordered = sorted(set(recs), key=lambda r: (stable_hash(seed, "split", r), r))
        n = len(ordered)
        n_test = max(1, round(TEST_FRACTION * n)) if n >= 3 else 0
        n_valid = max(1, round(VALID_FRACTION * n)) if n >= 3 else 0
        for i, rec in enumerate(ordered):
            split_of[rec] = "test" if i < n_test else "valid" if i < n_test + n_valid else "train"
    return df["recording"].map(split_of)


def distill_captions(
    df: pd.DataFrame, out_dir: Path, clap: str | Path, log: Callable[[str], None]
) -> pd.DataFrame:
    """Pick each clip's caption among its rule's phrases with ``maa distill``'s CLAP reranking."""
    from maa.stages.distill import distill
    from maa.stages.experts import Candidate

    phrases = {
        str((out_dir / p).resolve()): list(ph)
        for p, ph in zip(df["audio_path"], df["phrases"], strict=True)
    }

    class RulePhrases:
        name = "rules"

        def propose(self, clip: Any) -> list[Candidate]:
            texts = phrases.get(str(Path(clip.path).resolve()), [])
            return [Candidate(t, self.name, i) for i, t in enumerate(texts)]

    out = out_dir / "distill.parquet"
    log(f"captioning {len(df)} clips with distill's CLAP reranking ({clap})")
    distill(out_dir / "clips", out, experts=[RulePhrases()], clap=str(clap), progress=True, log=log)
    picked = pd.read_parquet(out)[["audio_path", "caption", "clap_score"]]
    merged = df.merge(picked.rename(columns={"caption": "distilled"}), on="audio_path", how="left")
    chosen = merged["distilled"].notna() & (merged["distilled"] != "")
    merged.loc[chosen, "caption"] = merged.loc[chosen, "distilled"]
    return merged.drop(columns=["distilled"])
