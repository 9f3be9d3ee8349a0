"""Expert distillation (``maa distill``): caption language-free audio with experts + CLAP.

Every expert (:mod:`maa.stages.experts`) proposes caption candidates for each clip; a CLAP scores
each candidate by the cosine between its text embedding and the clip's audio embedding; the
best becomes ``caption``. All candidates are kept in ``candidates`` (list of
``{text, expert, clap_score}``) with the winner's score in ``clap_score``. Without a CLAP the
first expert's best-ranked candidate is kept and the scores stay empty (null).

The run is resumable (clips already in the output are skipped; the output is rewritten
atomically every ``save_every`` clips), shardable (``shard=(i, n)`` takes the clips whose path
hash is ``i`` mod ``n``; :func:`merge_shards` joins the outputs) and robust: unreadable clips go
to a side manifest ``NAME.errors.parquet`` with the reason while the rest goes on.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import torch

from maa.audio import AUDIO_EXTENSIONS, audio_info, find_audio_files, load_audio
from maa.clap import load_clap
from maa.errors import MaaError, check_count
from maa.manifest import (
    empty_manifest,
    read_manifest,
    relative_to,
    resolve_path,
    side_file,
    write_manifest,
    write_side_table,
)
from maa.progress import ProgressBar
from maa.stages.experts import Candidate, Clip, Expert, RetrievalExpert, build_experts


@dataclass
class DistillSummary:
    """What a :func:`distill` run did."""

    out: Path
    processed: int  # clips captioned in this run
    resumed: int  # clips already in the output, skipped
    failed: int  # clips recorded in the errors side manifest
    elapsed: float  # seconds
    scored: bool  # whether a CLAP reranked the candidates
    errors_path: Path | None = None

    @property
    def clips_per_s(self) -> float:
        return (self.processed + self.failed) / self.elapsed if self.elapsed > 0 else 0.0


def parse_shard(spec: str | tuple[int, int] | None) -> tuple[int, int]:
    """``"i/n"`` (0-based ``i``) → ``(i, n)``; ``None`` → ``(0, 1)``."""
    if spec is None:
        return 0, 1
    if isinstance(spec, tuple):
        i, n = spec
    else:
        try:
            i, n = (int(x) for x in str(spec).split("/"))
        except ValueError:
            raise MaaError(f"--shard {spec!r}: expected i/n, e.g. 0/4 (i counts from 0)") from None
    if n < 1 or not 0 <= i < n:
        raise MaaError(f"--shard {i}/{n}: need n >= 1 and 0 <= i < n (i counts from 0)")
    return i, n


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def split_of(key: str) -> str:
    """Deterministic 90/5/5 train/valid/test split from the clip's relative path."""
    bucket = _hash("split:" + key) % 100
    return "train" if bucket < 90 else "valid" if bucket < 95 else "test"


def distill(
    audio_dir: str | Path,
    out: str | Path,
    experts: str | Sequence[str | Expert] = "label",
    clap: Any = None,
    caption_bank: str | Path | None = None,
    top_k: int = 5,
    shard: str | tuple[int, int] | None = None,
    *,
    batch_size: int = 32,
    save_every: int = 256,
    source: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> DistillSummary:
    """Caption every audio file under ``audio_dir`` into the manifest ``out``.

    Args:
        experts: spec string (``"label,retrieval,captioner:PATH"``) or a list of specs/experts;
            the first one decides when there is no CLAP.
        clap: a loaded CLAP (``maa.clap.load_clap``), a bundle / HF folder path, or None.
        caption_bank: manifest or text file of captions for the retrieval expert (the shipped
            AudioSet names are always in its bank).
        top_k: candidates per clip from the retrieval and captioner experts.
        shard: ``"i/n"`` or ``(i, n)``: process only this shard of the files.
        batch_size: clips per CLAP audio batch.
        save_every: rewrite the output (atomically) after this many clips.
    """
    for option, value in (("--top-k", top_k), ("--batch-size", batch_size),
                          ("--save-every", save_every)):  # fmt: skip
        check_count(option, value)
    audio_dir = Path(audio_dir)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    files = find_audio_files(audio_dir)
    if not files:
        raise MaaError(
            f"{audio_dir}: no audio files found (looked for {', '.join(AUDIO_EXTENSIONS)}); "
            "pass a folder of recordings"
        )
    i, n = parse_shard(shard)
    # a clip's shard (and split) comes from its path below audio_dir: stable across machines
    keyed = [(p.relative_to(audio_dir).as_posix(), p) for p in files]
    keyed = [(k, p) for k, p in keyed if _hash(k) % n == i]
    if isinstance(clap, (str, os.PathLike)):
        clap = load_clap(clap, device)
    expert_list = build_experts(experts, clap, caption_bank, top_k, device)
    if clap is None:
        log(
            "no CLAP given: keeping each clip's best-ranked candidate of the first expert; "
            "clap_score left empty (pass --clap to rerank)"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = read_manifest(out, validate_schema=False).to_dict("records") if out.is_file() else []
    done = {str(resolve_path(r["audio_path"], out.parent).resolve()) for r in rows}
    resumed = len(rows)
    pending = [(k, p) for k, p in keyed if str(p.resolve()) not in done]
    errors: list[dict[str, str]] = []
    src = source or audio_dir.resolve().name
    text_cache: dict[str, torch.Tensor] = {}
    for expert in expert_list:  # retrieval banks are embedded once; reuse them for scoring
        if clap is not None and isinstance(expert, RetrievalExpert) and expert.clap is clap:
            text_cache.update(zip(expert.bank, expert.bank_embeddings(), strict=True))
    t0 = time.perf_counter()
    since_save = done = 0

    def flush() -> Path | None:
        # an empty shard still writes its (empty) manifest so that merging finds every shard
        df = pd.DataFrame(rows).sort_values("audio_path", kind="stable") if rows else None
        write_manifest(df if df is not None else empty_manifest(), out)
        return write_side_table(sorted(errors, key=lambda e: e["audio_path"]), out, "errors")

    sr = int(clap.sample_rate) if clap is not None else None
    with ProgressBar(progress, "clips") as bar, ThreadPoolExecutor(2) as pool:
        bar("distill", 0, len(pending))
        for batch in _prefetch(pool, pending, batch_size, sr):
            clips: list[tuple[str, Clip, Any]] = []
            for key, path, loaded in batch:
                if isinstance(loaded, Exception):
                    errors.append({"audio_path": relative_to(path, out.parent),
                                   "error": str(loaded)})  # fmt: skip
                else:
                    info, wave = loaded
                    clips.append((key, Clip(path, audio_dir, wave, sr or 0), info))
            if clap is not None and clips:
                emb = clap.embed_audio([c.wave for _, c, _ in clips], sr)
                for (_, clip, _), e in zip(clips, emb, strict=True):
                    clip.audio_embedding = e
            for key, clip, info in clips:
                cands, problems = _propose(expert_list, clip)
                if not cands:
                    why = "; ".join(problems) or "every caption was empty after normalisation"
                    errors.append({"audio_path": relative_to(clip.path, out.parent),
                                   "error": f"no caption candidates ({why})"})  # fmt: skip
                    continue
                scores = _score(clap, clip, cands, text_cache)
                best = _choose(cands, scores, expert_list)
                rows.append({
                    "audio_path": relative_to(clip.path, out.parent),
                    "caption": cands[best].text,
                    "duration": float(info.duration),
                    "sample_rate": int(info.sample_rate),
                    "source": src,
                    "split": split_of(key),
                    "candidates": [
                        {"text": c.text, "expert": c.expert, "clap_score": s}
                        for c, s in zip(cands, scores, strict=True)
                    ],
                    "clap_score": scores[best],
                    "caption_expert": cands[best].expert,
                })  # fmt: skip
            since_save += len(batch)
            done += len(batch)
            bar("distill", done, len(pending))
            if since_save >= save_every:
                flush()
                since_save = 0
    errors_path = flush()
    return DistillSummary(
        out=out,
        processed=len(rows) - resumed,
        resumed=resumed,
        failed=len(errors),
        elapsed=time.perf_counter() - t0,
        scored=clap is not None,
        errors_path=errors_path,
    )


def _propose(experts: Sequence[Expert], clip: Clip) -> tuple[list[Candidate], list[str]]:
    cands: list[Candidate] = []
    problems: list[str] = []
    for expert in experts:
        try:
            cands.extend(expert.propose(clip))
        except MaaError as exc:  # one expert failing on a clip must not lose the others
            problems.append(f"{expert.name}: {exc}")
    return cands, problems


def _score(
    clap: Any, clip: Clip, cands: list[Candidate], cache: dict[str, torch.Tensor]
) -> list[float | None]:
    if clap is None or clip.audio_embedding is None:
        return [None] * len(cands)
    new = list(dict.fromkeys(c.text for c in cands if c.text not in cache))
    if new:
        cache.update(zip(new, clap.embed_text(new), strict=True))
    texts = torch.stack([cache[c.text] for c in cands])
    return [round(float(s), 6) for s in texts @ clip.audio_embedding.float()]


def _choose(cands: list[Candidate], scores: list[float | None], experts: Sequence[Expert]) -> int:
    """Highest CLAP score (ties: earlier expert, better rank); no scores: the first expert's
    best-ranked candidate (falling back to later experts when it proposed nothing)."""
    order = {e.name: i for i, e in enumerate(experts)}
    if all(s is not None for s in scores):
        return max(
            range(len(cands)),
            key=lambda j: (scores[j], -order.get(cands[j].expert, 99), -cands[j].rank),
        )
    return min(range(len(cands)), key=lambda j: (order.get(cands[j].expert, 99), cands[j].rank))


def _load(path: Path, sr: int | None) -> tuple[Any, torch.Tensor | None] | Exception:
    try:
        return audio_info(path), (load_audio(path, sr)[0] if sr is not None else None)
    except MaaError as exc:  # recorded per clip; the run goes on
        return exc


def _prefetch(pool: ThreadPoolExecutor, items: list[tuple[str, Path]], size: int, sr: int | None):
    """Batches of ``(key, path, loaded)``; the next batch is read while this one is embedded."""
    queue: deque[list[tuple[str, Path, Future]]] = deque()
    for start in range(0, len(items) + 2 * size, size):  # the next two batches load meanwhile
        if start < len(items):
            queue.append(
                [(k, p, pool.submit(_load, p, sr)) for k, p in items[start : start + size]]
            )
        if start >= 2 * size:
            yield [(k, p, f.result()) for k, p, f in queue.popleft()]


def merge_shards(shards: Sequence[str | Path], out: str | Path) -> tuple[int, int, int]:
    """Join shard outputs into ``out`` (paths re-based on ``out``'s folder, sorted by path).

    A clip present in several shards is kept once (first shard wins); error records of clips
    captioned in some shard are dropped. Returns ``(rows, duplicates, errors)``.
    """
    if not shards:
        raise MaaError("distill-merge: pass at least one shard manifest")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames, errs, seen, dup = [], [], set(), 0
    for shard in shards:
        df = read_manifest(shard)
        root = Path(shard).resolve().parent
        df["audio_path"] = [
            relative_to(resolve_path(p, root), out.parent) for p in df["audio_path"]
        ]
        keep = ~df["audio_path"].isin(seen)
        dup += int((~keep).sum())
        seen.update(df["audio_path"])
        frames.append(df[keep])
        epath = side_file(shard, "errors")
        if epath.is_file():
            for e in pq.read_table(str(epath)).to_pylist():
                e["audio_path"] = relative_to(resolve_path(e["audio_path"], root), out.parent)
                errs.append(e)
    merged = pd.concat(frames, ignore_index=True).sort_values("audio_path", kind="stable")
    errs = [e for e in errs if e["audio_path"] not in seen]
    write_manifest(merged, out)
    write_side_table(sorted(errs, key=lambda e: e["audio_path"]), out, "errors")
    return len(merged), dup, len(errs)
