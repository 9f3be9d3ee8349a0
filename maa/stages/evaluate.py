"""Evaluation stage: FD, FAD, KL, IS and CLAP score of generated audio against a reference set.

Inputs are folders of audio files or Parquet manifests. Each clip is decoded once, mixed to
mono, resampled to every embedder's rate and embedded whole (no crops); short clips are
zero-padded as audioldm_eval does (PANNs: DC removed, ≥ 2 s; VGGish: ≥ one 0.96 s example).
Clips of one length share a batch, so padding never leaks into another clip's features, and the
last partial batch is always kept. Features are cached per (embedder weights, file content)
hash, so re-runs are fast and can never be stale. Files are paired by name (the file stem, or
the relative path without suffix when stems repeat) for KL and for borrowing reference captions.

The report (:class:`EvalReport`, written as JSON atomically) lists every metric with its value,
the backbone it came from, the file counts and notes; metrics that could not be computed have
``value: null`` and a reason. Per-file scores go to a Parquet side file next to it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maa import __version__
from maa.errors import MaaError, check_count
from maa.fsutil import write_json_atomic
from maa.manifest import side_file, write_side_table
from maa.progress import ProgressBar
from maa.stages.eval_features import (
    Backbone,
    ClapBackbone,
    ClipSet,
    FeatureCache,
    SideFeatures,
    clap_backbone,
    collect_clips,
    default_cache_dir,
    extract_features,
    inspect_files,
    pair_by_name,
    panns_backbone,
    vggish_backbone,
)

METRICS = ("fd", "fad", "kl", "is", "clap")
REPORT_FORMAT = "maa-eval-report"


@dataclass(frozen=True)
class MetricEntry:
    """One metric of the report, e.g. ``FD`` on ``panns-cnn14-16k`` embeddings.

    ``value`` is None when it could not be computed (``reason`` says why); counts that do not
    apply stay None.
    """

    metric: str
    value: float | None
    backbone: str | None
    std: float | None = None  # IS: over the splits
    splits: int | None = None  # IS
    n_generated: int | None = None
    n_reference: int | None = None
    rows_generated: int | None = None  # FAD: VGGish frames
    rows_reference: int | None = None
    n_paired: int | None = None  # KL: name-paired files
    notes: tuple[str, ...] = ()
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The entry as ``report.json`` holds it (no unset counts, no empty reason)."""
        d = asdict(self)
        keep = {k: v for k, v in d.items() if k in ("value", "backbone") or v not in (None, "")}
        return keep | {"notes": list(self.notes)}


@dataclass(frozen=True)
class SetSummary:
    """One side's files: counted, failed, and per backbone name zero-padded or cache hits."""

    source: str
    n_files: int
    n_failed: int
    n_padded: dict[str, int]
    n_cached: dict[str, int]


@dataclass(frozen=True)
class EvalReport:
    """What :func:`evaluate` found; :meth:`to_dict` is the layout of ``report.json``."""

    created: str  # ISO 8601, UTC
    generated: SetSummary
    reference: SetSummary
    n_paired: int
    metrics: tuple[MetricEntry, ...]
    backbones: dict[str, dict[str, Any]]  # name -> {identity, sample_rate}
    cache: str | None
    per_file: str  # name of the per-file Parquet beside the report
    notes: tuple[str, ...]
    versions: dict[str, str]

    def metric(self, name: str) -> MetricEntry:
        """The entry named ``name`` (``FD``, ``KL_softmax`` …); KeyError if it was not asked."""
        return {m.metric: m for m in self.metrics}[name]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``report.json`` (format ``maa-eval-report``, version 1)."""
        return {
            "format": REPORT_FORMAT,
            "format_version": 1,
            **asdict(self),
            "metrics": [m.to_dict() for m in self.metrics],
            "notes": list(self.notes),
        }


def parse_metrics(metrics: str | Sequence[str] | None) -> tuple[list[str], bool]:
    """``"fd,kl"`` / list / ``None`` (all that can be computed) → (metrics, explicitly asked)."""
    if metrics is None or metrics == "" or metrics == "all":
        return list(METRICS), False
    items = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [m.strip().lower() for m in items if m.strip()]
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise MaaError(
            f"--metrics: unknown {', '.join(bad) or '(empty)'}; choose from {','.join(METRICS)}"
        )
    return list(dict.fromkeys(names)), True


def parse_embedder(spec: str | None) -> tuple[str | None, str | None]:
    """``panns:PATH`` / ``clap:PATH`` / ``clap`` (the ``--clap`` model) → (kind, path)."""
    if spec is None or spec == "":
        return None, None
    kind, _, path = str(spec).partition(":")
    kind = kind.strip().lower()
    if kind not in ("panns", "clap") or (kind == "panns" and not path):
        raise MaaError(
            f"--embedder {spec}: expected panns:/path/to/Cnn14_16k_mAP=0.438.pth, "
            "clap:BUNDLE_OR_FOLDER, or clap (uses --clap)"
        )
    return kind, (path or None)


def evaluate(
    generated: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    metrics: str | Sequence[str] | None = None,
    embedder: str | None = None,
    vggish: str | os.PathLike[str] | None = None,
    clap: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] = "report.json",
    *,
    device: str | None = "auto",
    batch_size: int = 8,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    progress: bool = False,
) -> EvalReport:
    """Score ``generated`` against ``reference``; write ``out`` (JSON) and its Parquet side file.

    Args:
        generated, reference: a folder of audio files or a Parquet manifest each.
        metrics: subset of ``fd,fad,kl,is,clap``; ``None`` computes every metric whose model
            was given and reports the others as skipped (an explicit list makes a missing
            model an error instead).
        embedder: ``panns:PATH`` (FD, KL, IS) or ``clap:PATH``/``clap`` (FD on CLAP audio
            embeddings; KL and IS need PANNs).
        vggish: torchvggish checkpoint for FAD. clap: CLAP bundle/folder for the CLAP score.
        out: report path; per-file scores go to ``<out stem>.files.parquet`` beside it.
        cache_dir: feature cache root (default :func:`default_cache_dir`); ``use_cache=False``
            disables it.
        progress: show a progress bar on stderr while embedding.

    Returns:
        The report that was written.
    """
    from maa.device import resolve_device
    from maa.models.panns import PANNS_FILE, PANNS_URL
    from maa.models.vggish import VGGISH_FILE, VGGISH_URL

    if batch_size < 1:
        check_count("--batch-size", batch_size)
    wanted, explicit = parse_metrics(metrics)
    kind, emb_path = parse_embedder(embedder)
    gen, ref = collect_clips(generated, "generated"), collect_clips(reference, "reference")
    pairs = pair_by_name(gen.keys, ref.keys)
    captions = list(gen.captions)  # a generated clip without one borrows its namesake's
    for g, r in pairs:
        captions[g] = captions[g] or ref.captions[r]
    dev = resolve_device(device)

    if kind == "clap" and emb_path is None:
        if clap is None:
            raise MaaError("--embedder clap needs a CLAP: pass --clap PATH or clap:PATH")
        emb_path = str(clap)

    # what cannot be computed, decided from the arguments before anything is loaded
    need_panns = (
        f"needs the PANNs checkpoint: --embedder panns:/path/to/{PANNS_FILE} (download it from "
        f"{PANNS_URL})"
    )
    reasons: dict[str, str] = {}
    if kind is None:
        reasons["fd"] = need_panns + ", or --embedder clap:BUNDLE"
    if kind != "panns":
        only = "needs AudioSet class logits, which only PANNs gives; pass --embedder panns:PATH"
        reasons["kl"] = reasons["is"] = only if kind == "clap" else need_panns
    if not vggish:
        reasons["fad"] = f"needs --vggish /path/to/{VGGISH_FILE} (download it from {VGGISH_URL})"
    if not clap:
        reasons["clap"] = "needs --clap BUNDLE|FOLDER (a `maa train-clap` bundle or a HF ClapModel)"
    elif not any(captions):
        reasons["clap"] = (
            "needs captions: neither --generated nor its name-paired --reference clips have "
            "any (folders carry none); pass a manifest with a 'caption' column"
        )
    blocked = {m: reasons[m] for m in wanted if m in reasons}
    if blocked and (explicit or len(blocked) == len(wanted)):
        by_reason: dict[str, list[str]] = {}
        for m, r in blocked.items():
            by_reason.setdefault(r, []).append(m)
        lines = "; ".join(f"{', '.join(ms)} {r}" for r, ms in by_reason.items())
        raise MaaError(f"cannot compute {', '.join(blocked)}: {lines}")
    todo = set(wanted) - set(blocked)

    cache = FeatureCache(
        (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) if use_cache else None
    )
    memo = cache.root
    panns = (
        panns_backbone(emb_path, memo) if kind == "panns" and todo & {"fd", "kl", "is"} else None
    )
    vgg = vggish_backbone(vggish, memo) if "fad" in todo and vggish else None
    clap_b = clap_backbone(clap, dev, memo) if "clap" in todo and clap else None
    main: Backbone | None = panns
    if kind == "clap" and "fd" in todo and emb_path:
        if clap_b is not None and Path(emb_path).expanduser() == Path(clap).expanduser():
            main = clap_b
        else:  # a second CLAP, only for FD: named apart in the report and the per-file table
            main = clap_backbone(emb_path, dev, memo)
            main.name = "clap-embedder"
    backbones: dict[str, Backbone] = {}
    for b, used_by in ((main, {"fd"}), (panns, {"kl", "is"}), (vgg, {"fad"}), (clap_b, {"clap"})):
        if b is not None and used_by & todo:
            backbones[b.identity] = b
    sides = {}
    with ProgressBar(progress, "files", transient=True) as bar:
        for clips in (gen, ref):
            # the CLAP score's CLAP embeds the reference audio only when it is FD's embedder too
            chosen = [b for b in backbones.values() if clips is gen or b is main or b is not clap_b]
            sides[clips.label] = side = inspect_files(clips)
            extract_features(clips, side, chosen, cache, dev, batch_size, bar)
    sg, sr_ = sides["generated"], sides["reference"]

    results: list[MetricEntry] = []
    per_gen: dict[str, dict[int, float]] = {}  # per-file column -> generated index -> score
    for m in wanted:
        if m in blocked:
            names = ["KL_softmax", "KL_sigmoid"] if m == "kl" else [m.upper()]
            results += [MetricEntry(name, None, None, reason=blocked[m]) for name in names]
        elif m in ("fd", "fad"):
            b = vgg if m == "fad" else main
            assert b is not None
            key = "frames" if b is vgg else "embedding" if b is panns else "audio"
            results.append(_frechet(m.upper(), b, key, sg, sr_))
        elif m == "kl":
            assert panns is not None
            results += _kl(panns, sg, sr_, pairs, per_gen)
        elif m == "is":
            assert panns is not None
            results.append(_inception(panns, sg))
        elif m == "clap":
            assert clap_b is not None
            results.append(_clap(clap_b, sg, captions, cache, per_gen))
    return _write_report(out, gen, ref, sides, pairs, results, backbones, cache, captions, per_gen)


# -- metrics over the extracted features ---------------------------------------------------------
def _frechet(
    metric: str, b: Backbone, key: str, sg: SideFeatures, sr_: SideFeatures
) -> MetricEntry:
    from maa.metrics import frechet_distance_features

    gi, ri = sg.ok(b.identity), sr_.ok(b.identity)
    counts = {"n_generated": len(gi), "n_reference": len(ri)}
    if not gi or not ri:
        return MetricEntry(metric, None, b.name, reason="no embeddable files on one side", **counts)
    xg = np.concatenate([np.atleast_2d(sg.feats[b.identity][i][key]) for i in gi])
    xr = np.concatenate([np.atleast_2d(sr_.feats[b.identity][i][key]) for i in ri])
    rows = {"rows_generated": len(xg), "rows_reference": len(xr)} if key == "frames" else {}
    what = "frames" if key == "frames" else "files"
    fewest, dim = min(len(xg), len(xr)), xg.shape[1]
    if fewest < 2:
        why = f"a covariance needs at least 2 {what} per side, got {len(xg)} generated and "
        why += f"{len(xr)} reference"
        return MetricEntry(metric, None, b.name, **counts, **rows, reason=why)
    notes: list[str] = []
    if fewest <= dim:
        notes.append(
            f"rank-deficient covariance ({fewest} {what} ≤ {dim} dims): "
            "compare only with runs of the same size"
        )
    value = frechet_distance_features(xg, xr, notes=notes)
    return MetricEntry(metric, float(value), b.name, notes=tuple(notes), **counts, **rows)


def _kl(
    b: Backbone,
    sg: SideFeatures,
    sr_: SideFeatures,
    pairs: Sequence[tuple[int, int]],
    per_gen: dict[str, dict[int, float]],
) -> list[MetricEntry]:
    from maa.metrics import kl_divergence

    fg, fr = sg.feats[b.identity], sr_.feats[b.identity]
    ok = [(g, r) for g, r in pairs if fg[g] is not None and fr[r] is not None]
    n = len(fg)
    out = []
    unpaired = (
        "no generated file shares a name with a reference file (KL compares each clip with the "
        "reference clip of the same name); name them alike"
    )
    for kind in ("softmax", "sigmoid"):
        metric = f"KL_{kind}"
        if not ok:
            out.append(MetricEntry(metric, None, b.name, n_paired=0, reason=unpaired))
            continue
        p = np.stack([fr[r]["logits"] for _, r in ok])
        q = np.stack([fg[g]["logits"] for g, _ in ok])
        values = kl_divergence(p, q, kind)
        per_gen[f"kl_{kind}"] = {g: float(v) for (g, _), v in zip(ok, values, strict=True)}
        notes = []
        if len(ok) < n:
            notes.append(f"{n - len(ok)} of {n} generated files have no reference namesake")
        out.append(
            MetricEntry(metric, float(values.mean()), b.name, n_paired=len(ok), notes=tuple(notes))
        )
    return out


def _inception(b: Backbone, sg: SideFeatures) -> MetricEntry:
    from maa.metrics import IS_SPLITS, inception_score

    gi = sg.ok(b.identity)
    if not gi:
        return MetricEntry(
            "IS", None, b.name, n_generated=0, reason="no embeddable generated files"
        )
    logits = np.stack([sg.feats[b.identity][i]["logits"] for i in gi])
    mean, std, splits = inception_score(logits)
    short = splits != IS_SPLITS
    notes = (f"only {len(gi)} files: {splits} splits instead of {IS_SPLITS}",) if short else ()
    return MetricEntry(
        "IS", float(mean), b.name, float(std), int(splits), n_generated=len(gi), notes=notes
    )


def _clap(
    b: ClapBackbone,
    sg: SideFeatures,
    captions: list[str],
    cache: FeatureCache,
    per_gen: dict[str, dict[int, float]],
) -> MetricEntry:
    from maa.metrics import clap_scores

    idx = [i for i in sg.ok(b.identity) if captions[i]]
    n = len(captions)
    if not idx:
        return MetricEntry(
            "CLAP", None, b.name, reason="no embeddable generated clip has a caption"
        )
    text_id = b.identity + "-text"
    digests = [hashlib.sha256(captions[i].encode("utf-8")).hexdigest() for i in idx]
    hits, packed = cache.load_all(text_id, digests)
    text = {d: hit["text"] for d, hit in zip(digests, hits, strict=True) if hit is not None}
    missing = sorted({(d, captions[i]) for d, i in zip(digests, idx, strict=True) if d not in text})
    if missing:
        emb = b.embed_text([c for _, c in missing])
        for (d, _), e in zip(missing, emb, strict=True):
            text[d] = np.asarray(e, np.float32)
            cache.save(text_id, d, {"text": text[d]})
    if not packed:
        cache.save_pack(text_id, digests, [{"text": text[d]} for d in digests])
    audio = np.stack([sg.feats[b.identity][i]["audio"] for i in idx])
    scores = clap_scores(audio, np.stack([text[d] for d in digests]))
    per_gen["clap_score"] = {i: float(s) for i, s in zip(idx, scores, strict=True)}
    skipped = n - len(idx)
    why = f"{skipped} of {n} generated files were not scored (no caption or unreadable)"
    notes = (why,) if skipped else ()
    return MetricEntry("CLAP", float(scores.mean()), b.name, n_generated=len(idx), notes=notes)


# -- report ----------------------------------------------------------------------------------
def _write_report(
    out: str | os.PathLike[str],
    gen: ClipSet,
    ref: ClipSet,
    sides: dict[str, SideFeatures],
    pairs: Sequence[tuple[int, int]],
    results: list[MetricEntry],
    backbones: dict[str, Backbone],
    cache: FeatureCache,
    captions: list[str],
    per_gen: dict[str, dict[int, float]],
) -> EvalReport:
    """Write the per-file Parquet beside ``out``, then the report itself; returns the report."""
    import pandas as pd
    import scipy

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partner = {
        "generated": {g: ref.keys[r] for g, r in pairs},
        "reference": {r: gen.keys[g] for g, r in pairs},
    }
    summaries, frames = {}, []
    for c in (gen, ref):
        s, n = sides[c.label], len(c.paths)
        summaries[c.label] = SetSummary(
            source=c.source,
            n_files=n,
            n_failed=sum(bool(e) for e in s.errors),
            n_padded={backbones[k].name: int(sum(v)) for k, v in s.padded.items()},
            n_cached={backbones[k].name: v for k, v in s.cached.items()},
        )
        cols: dict[str, Any] = {
            "set": [c.label] * n,
            "key": c.keys,
            "audio_path": c.names,
            "caption": captions if c is gen else c.captions,
            "sample_rate": s.sample_rates,
            "duration": s.durations,
            "sha256": s.digests,
            "error": s.errors,
            "paired_with": [partner[c.label].get(i, "") for i in range(n)],
        }
        for ident, flags in s.padded.items():
            cols[f"padded_{backbones[ident].name}"] = flags
        for name in ("kl_softmax", "kl_sigmoid", "clap_score"):
            values = per_gen.get(name, {}) if c is gen else {}
            cols[name] = [values.get(i, float("nan")) for i in range(n)]
        frames.append(pd.DataFrame(cols))
    notes = []
    rates = {c.label: sorted({r for r in sides[c.label].sample_rates if r}) for c in (gen, ref)}
    if rates["generated"] != rates["reference"]:
        notes.append(
            f"sample rates differ (generated {rates['generated']} Hz, reference "
            f"{rates['reference']} Hz); every clip was resampled to each embedder's rate"
        )
    for label, summary in summaries.items():
        if summary.n_failed:
            notes.append(
                f"{summary.n_failed} {label} file(s) could not be read; see the per-file table"
            )
    report = EvalReport(
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        generated=summaries["generated"],
        reference=summaries["reference"],
        n_paired=len(pairs),
        metrics=tuple(results),
        backbones={
            b.name: {"identity": b.identity, "sample_rate": b.known_rate}
            for b in backbones.values()
        },
        cache=str(cache.root) if cache.root else None,
        per_file=side_file(out, "files").name,
        notes=tuple(notes),
        versions={
            "maa": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "python": platform.python_version(),
        },
    )
    write_side_table(pd.concat(frames, ignore_index=True), out, "files")
    write_json_atomic(out, report.to_dict())
    return report
