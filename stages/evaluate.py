"""Evaluation stage: FD, FAD, KL, IS and CLAP score of generated audio against a reference set.

Inputs are folders of audio files or Parquet manifests. Each clip is decoded once, mixed to
mono, resampled to every embedder's rate and embedded whole (no crops); short clips are
zero-padded as audioldm_eval does (PANNs: DC removed, ≥ 2 s; VGGish: ≥ one 0.96 s example).
Clips of one length share a batch, so padding never leaks into another clip's features, and the
last partial batch is always kept. Features are cached per (embedder weights, file content)
hash, so re-runs are fast and can never be stale. Files are paired by name (the file stem, or
the relative path without suffix when stems repeat) for KL and for borrowing reference captions.

The report (JSON, atomic) lists every metric with its value, the backbone it came from, the
file counts and notes; metrics that could not be computed have ``value: null`` and a reason.
Per-file scores go to a Parquet side file next to it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from maa_cli import __version__
from maa_cli.errors import MaaError

METRICS = ("fd", "fad", "kl", "is", "clap")
REPORT_FORMAT = "maa-eval-report"
FEATURES_VERSION = "1"  # bump when decoding/padding/resampling changes: old cache entries die
CHUNK_FILES = 32  # files decoded at a time (bounds memory; batches are formed inside a chunk)
Progress = Callable[[str, int, int], None]
_KEEP_LOADED = 3
_LOADED: dict[str, Any] = {}  # identity (weights hash) -> loaded model


# -- inputs ----------------------------------------------------------------------------------
@dataclass
class ClipSet:
    """The audio files of one side (``generated`` or ``reference``)."""

    label: str
    source: str
    paths: list[Path]
    names: list[str]  # as given: path relative to the folder, or the manifest's audio_path
    captions: list[str]
    keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys = pairing_keys(self.names)


def collect_clips(source: str | os.PathLike[str], label: str) -> ClipSet:
    """A folder (all audio files below it) or a Parquet manifest as a :class:`ClipSet`."""
    from maa_cli.audio import AUDIO_EXTENSIONS, find_audio_files
    from maa_cli.manifest import audio_paths, read_manifest

    path = Path(source).expanduser()
    if path.is_dir():
        paths = find_audio_files(path)
        names = [p.relative_to(path).as_posix() for p in paths]
        captions = [""] * len(paths)
        if not paths:
            raise MaaError(
                f"--{label} {path}: the folder holds no audio files ({', '.join(AUDIO_EXTENSIONS)})"
            )
    elif path.is_file():
        if path.suffix.lower() != ".parquet":
            raise MaaError(f"--{label} {path}: pass a folder of audio files or a .parquet manifest")
        df = read_manifest(path)
        if df.empty:
            raise MaaError(f"--{label} {path}: the manifest has no rows")
        paths, names = audio_paths(df), [str(p) for p in df["audio_path"]]
        captions = [str(c).strip() for c in df["caption"]]
    else:
        raise MaaError(f"--{label} {path}: no such folder or manifest")
    return ClipSet(label, str(path), paths, names, captions)


def pairing_keys(names: Sequence[str]) -> list[str]:
    """File stems (``dog_1.wav`` and ``dog_1.flac`` pair); relative paths without suffix if
    stems repeat within the set."""
    stems = [PurePosixPath(n).stem for n in names]
    if len(set(stems)) == len(stems):
        return stems
    return [PurePosixPath(n).with_suffix("").as_posix() for n in names]


def pair_by_name(gen_keys: Sequence[str], ref_keys: Sequence[str]) -> list[tuple[int, int]]:
    """``(generated index, reference index)`` for every key that occurs once on each side."""
    g, r = _unique_index(gen_keys), _unique_index(ref_keys)
    return [(g[k], r[k]) for k in sorted(g.keys() & r.keys())]


def _unique_index(keys: Sequence[str]) -> dict[str, int]:
    counts = Counter(keys)
    return {k: i for i, k in enumerate(keys) if counts[k] == 1}


# -- embedders -------------------------------------------------------------------------------
class Backbone(ABC):
    """A lazily loaded embedder. ``identity`` (name + weights hash) keys the feature cache."""

    name = ""

    def __init__(self, identity: str, sample_rate: int | None, loader: Callable[[], Any]) -> None:
        self.identity, self.known_rate = identity, sample_rate
        self._loader: Callable[[], Any] = loader
        self._model: Any = None

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) the model takes; asks the model itself when it was not known."""
        if self.known_rate is None:
            self.known_rate = int(self.model.sample_rate)
        return self.known_rate

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = _LOADED.get(self.identity)
        if self._model is None:
            self._model = self._loader()
            # keep the last few models: sweeps call evaluate() many times in one process
            while len(_LOADED) >= _KEEP_LOADED:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[self.identity] = self._model
        return self._model

    def prepare(self, wave: torch.Tensor) -> tuple[torch.Tensor, bool]:
        return wave, False

    @abstractmethod
    def embed(self, waves: torch.Tensor, device: torch.device) -> list[dict[str, np.ndarray]]:
        """Equal-length waves ``(B, T)`` at :attr:`sample_rate` → one feature dict per clip."""


class PannsBackbone(Backbone):
    name = "panns-cnn14-16k"

    def prepare(self, wave: torch.Tensor) -> tuple[torch.Tensor, bool]:
        from maa_cli.models.panns import pad_for_panns

        return pad_for_panns(wave, self.model.cfg)

    @torch.inference_mode()
    def embed(self, waves: torch.Tensor, device: torch.device) -> list[dict[str, np.ndarray]]:
        out = self.model.to(device)(waves.to(device))
        emb, logits = out.embedding.float().cpu().numpy(), out.logits.float().cpu().numpy()
        return [{"embedding": e, "logits": lg} for e, lg in zip(emb, logits, strict=True)]


class VggishBackbone(Backbone):
    name = "vggish"

    def prepare(self, wave: torch.Tensor) -> tuple[torch.Tensor, bool]:
        from maa_cli.models.vggish import pad_for_vggish

        return pad_for_vggish(wave, self.model.cfg)

    @torch.inference_mode()
    def embed(self, waves: torch.Tensor, device: torch.device) -> list[dict[str, np.ndarray]]:
        frames = self.model.to(device).embed(waves.to(device)).float().cpu().numpy()
        return [{"frames": f} for f in frames]


class ClapBackbone(Backbone):
    name = "clap"

    @torch.inference_mode()
    def embed(self, waves: torch.Tensor, device: torch.device) -> list[dict[str, np.ndarray]]:
        emb = self.model.embed_audio(list(waves), self.sample_rate).float().cpu().numpy()
        return [{"audio": e} for e in emb]

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self.model.embed_text(texts).float().cpu().numpy()


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def weights_digest(path: Path, memo_dir: Path | None = None) -> str:
    """:func:`file_digest` of a (large) weights file, remembered per (path, size, mtime, inode)
    in ``memo_dir`` so a re-run does not re-read hundreds of MB; any rewrite changes them."""
    if memo_dir is None:
        return file_digest(path)
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    memo = memo_dir / "weights-digests.json"
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = file_digest(path)
        try:
            from maa_cli.fsutil import write_json_atomic

            memo.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(memo, dict(list(known.items())[-256:]))
        except (OSError, MaaError):  # a read-only home only costs re-hashing next time
            pass
    return known[key]


def _identity(name: str, *parts: str) -> str:
    """Cache namespace: the weights' hash plus everything else that shapes the features (our
    preprocessing version, torchaudio's resampler)."""
    import torchaudio

    parts = (FEATURES_VERSION, torchaudio.__version__, *parts)
    return f"{name}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:20]}"


def panns_backbone(path: str | os.PathLike[str], memo: Path | None = None) -> PannsBackbone:
    from maa_cli.models.panns import PANNS_FILE, load_panns

    p = _existing(path, f"--embedder panns:PATH (the official {PANNS_FILE})")
    return PannsBackbone(_identity("panns", weights_digest(p, memo)), 16000, lambda: load_panns(p))


def vggish_backbone(path: str | os.PathLike[str], memo: Path | None = None) -> VggishBackbone:
    from maa_cli.models.vggish import VGGISH_FILE, load_vggish

    p = _existing(path, f"--vggish PATH (torchvggish's {VGGISH_FILE})")
    return VggishBackbone(
        _identity("vggish", weights_digest(p, memo)), 16000, lambda: load_vggish(p)
    )


def clap_backbone(
    spec: str | os.PathLike[str], device: torch.device, memo: Path | None = None
) -> ClapBackbone:
    """A CLAP (bundle folder or Hugging Face ``ClapModel`` folder) as a backbone.

    The model loads on first use (a cached re-run never loads it) when its sample rate can be
    read from the folder's JSON; otherwise it is loaded now, which also validates the folder.
    """
    from maa_cli.clap import load_clap

    path = _existing(spec, "--clap PATH|BUNDLE", folder=True)
    rate = _clap_rate_hint(path)
    backbone = ClapBackbone(
        _identity("clap", *_clap_fingerprint(path, memo)),
        rate,
        lambda: load_clap(path, device=device),
    )
    if rate is None:
        backbone.sample_rate  # noqa: B018 (loads and validates the CLAP)
    return backbone


def _clap_rate_hint(path: Path) -> int | None:
    try:
        bundle = json.loads((path / "bundle.json").read_text(encoding="utf-8"))
        if "clap" in bundle.get("components", {}):
            return int(bundle["mel"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _clap_fingerprint(path: Path, memo: Path | None) -> list[str]:
    bundle_file = path / "bundle.json"
    if bundle_file.is_file():
        meta = json.loads(bundle_file.read_text(encoding="utf-8"))
        entry = meta.get("components", {}).get("clap", {})
        parts = [json.dumps(entry, sort_keys=True), json.dumps(meta.get("mel"), sort_keys=True)]
        if "file" in entry and (path / entry["file"]).is_file():
            parts.append(weights_digest(path / entry["file"], memo))
        return parts
    weights = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and p.suffix in {".json", ".safetensors", ".bin", ".txt", ".model"}
    )
    return [f"{p.name}:{weights_digest(p, memo)}" for p in weights]


def _existing(path: str | os.PathLike[str], flag: str, folder: bool = False) -> Path:
    p = Path(path).expanduser()
    if not (p.is_dir() if folder else p.is_file()):
        kind = "folder" if folder else "file"
        raise MaaError(f"{p}: no such {kind}; pass an existing one with {flag}")
    return p


# -- feature cache ---------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$MAA_CACHE_DIR`` or ``$XDG_CACHE_HOME/maa`` or ``~/.cache/maa``, plus ``eval-features``."""
    root = os.environ.get("MAA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "maa"
    )
    return Path(root) / "eval-features"


class FeatureCache:
    """One ``.npz`` per (embedder identity, content digest), written atomically, plus *packs*:
    the features of a whole set in one file, keyed by the digests of all its files, so that a
    re-run over 1 000 files opens one file instead of 1 000."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def _path(self, identity: str, digest: str) -> Path:
        assert self.root is not None
        return self.root / identity / digest[:2] / f"{digest}.npz"

    def load(self, identity: str, digest: str) -> dict[str, np.ndarray] | None:
        if self.root is None:
            return None
        path = self._path(identity, digest)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):  # a damaged entry is recomputed, never trusted
            return None

    def save(self, identity: str, digest: str, arrays: dict[str, np.ndarray]) -> None:
        if self.root is None:
            return
        from maa_cli.fsutil import atomic_path

        path = self._path(identity, digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def save_pack(self, identity: str, digests: Sequence[str], entries: list[dict]) -> None:
        """Store ``entries`` (one feature dict per digest, same keys) as one pack."""
        if self.root is None or not entries:
            return
        arrays: dict[str, np.ndarray] = {}
        for k in entries[0]:
            parts = [np.asarray(e[k]) for e in entries]
            if len({p.shape for p in parts}) == 1:
                arrays[k] = np.stack(parts)
            else:  # ragged rows (VGGish frames per clip): concatenate and keep the counts
                arrays[k] = np.concatenate(parts)
                arrays[f"{k}@rows"] = np.array([len(p) for p in parts])
        self.save(identity, _pack_key(digests), arrays)

    def load_pack(self, identity: str, digests: Sequence[str]) -> list[dict] | None:
        """The entries stored by :meth:`save_pack` for exactly these digests, or ``None``."""
        data = self.load(identity, _pack_key(digests))
        if data is None:
            return None
        out: list[dict] = [{} for _ in digests]
        for k, v in data.items():
            if k.endswith("@rows"):
                continue
            rows = data.get(f"{k}@rows")
            parts = np.split(v, np.cumsum(rows)[:-1]) if rows is not None else list(v)
            if len(parts) != len(digests):
                return None
            for entry, part in zip(out, parts, strict=True):
                entry[k] = part
        return out


def _pack_key(digests: Sequence[str]) -> str:
    return "pack-" + hashlib.sha256("\n".join(digests).encode()).hexdigest()


# -- extraction ------------------------------------------------------------------------------
@dataclass
class SideFeatures:
    """What was found for each file of one :class:`ClipSet` (lists are per file)."""

    digests: list[str]
    errors: list[str]  # "" when the file is fine
    sample_rates: list[int]
    durations: list[float]
    feats: dict[str, list[dict[str, np.ndarray] | None]] = field(default_factory=dict)
    padded: dict[str, list[bool]] = field(default_factory=dict)
    cached: dict[str, int] = field(default_factory=dict)

    def ok(self, identity: str) -> list[int]:
        return [i for i, f in enumerate(self.feats.get(identity, [])) if f is not None]


def inspect_files(clips: ClipSet) -> SideFeatures:
    """Header facts and content digest of every file; unreadable files get their error."""
    from maa_cli.audio import audio_info
    from maa_cli.errors import AudioError

    side = SideFeatures([], [], [], [])
    for path in clips.paths:
        try:
            info = audio_info(path)
            digest, error = file_digest(path), ""
        except (AudioError, OSError) as exc:
            info, digest, error = None, "", str(exc)
        side.digests.append(digest)
        side.errors.append(error)
        side.sample_rates.append(info.sample_rate if info else 0)
        side.durations.append(info.duration if info else float("nan"))
    return side


def extract_features(
    clips: ClipSet,
    side: SideFeatures,
    backbones: Sequence[Backbone],
    cache: FeatureCache,
    device: torch.device,
    batch_size: int = 8,
    progress: Progress | None = None,
) -> None:
    """Fill ``side.feats[identity]`` for every backbone: from the cache, else by embedding."""
    from maa_cli.audio import load_audio, resample
    from maa_cli.errors import AudioError

    n = len(clips.paths)
    readable = [i for i in range(n) if not side.errors[i]]
    packed: set[str] = set()
    for b in backbones:
        feats: list[dict[str, np.ndarray] | None] = [None] * n
        padded = [False] * n
        pack = cache.load_pack(b.identity, [side.digests[i] for i in readable])
        for j, i in enumerate(readable):
            hit = pack[j] if pack is not None else cache.load(b.identity, side.digests[i])
            if hit is not None:
                padded[i] = bool(hit.pop("padded", False))
                feats[i] = hit
        if pack is not None:
            packed.add(b.identity)
        side.feats[b.identity], side.padded[b.identity] = feats, padded
        side.cached[b.identity] = sum(f is not None for f in feats)
    todo = [
        i
        for i in range(n)
        if not side.errors[i] and any(side.feats[b.identity][i] is None for b in backbones)
    ]
    chunk_size = max(CHUNK_FILES, 4 * batch_size)
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        decoded: dict[int, tuple[torch.Tensor, int]] = {}
        for i in chunk:
            try:
                decoded[i] = load_audio(clips.paths[i])
            except AudioError as exc:
                side.errors[i] = str(exc)
        resampled: dict[tuple[int, int], torch.Tensor] = {}
        for b in backbones:
            need = [i for i in decoded if side.feats[b.identity][i] is None]
            groups: dict[int, list[tuple[int, torch.Tensor, bool]]] = {}
            for i in need:
                wave, sr = decoded[i]
                key = (i, b.sample_rate)
                if key not in resampled:
                    resampled[key] = resample(wave, sr, b.sample_rate)
                ready, was_padded = b.prepare(resampled[key])
                groups.setdefault(ready.shape[-1], []).append((i, ready, was_padded))
            # one length per batch: padding never mixes clips, and the tail batch is kept
            for items in groups.values():
                for s in range(0, len(items), batch_size):
                    part = items[s : s + batch_size]
                    outs = b.embed(torch.stack([w for _, w, _ in part]), device)
                    for (i, _, was_padded), out in zip(part, outs, strict=True):
                        out = {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}
                        cache.save(
                            b.identity, side.digests[i], {**out, "padded": np.array(was_padded)}
                        )
                        side.feats[b.identity][i] = out
                        side.padded[b.identity][i] = was_padded
        if progress is not None:
            progress(clips.label, min(start + chunk_size, len(todo)), len(todo))
    for b in backbones:  # one pack per set for the next run
        done = [i for i in range(n) if side.feats[b.identity][i] is not None]
        if b.identity not in packed and done:
            entries = [
                {**side.feats[b.identity][i], "padded": np.array(side.padded[b.identity][i])}
                for i in done
            ]
            cache.save_pack(b.identity, [side.digests[i] for i in done], entries)


# -- the stage -------------------------------------------------------------------------------
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


def generated_captions(gen: ClipSet, ref: ClipSet, pairs: Sequence[tuple[int, int]]) -> list[str]:
    """Each generated clip's caption: its own, else its name-paired reference clip's."""
    out = list(gen.captions)
    for g, r in pairs:
        if not out[g]:
            out[g] = ref.captions[r]
    return out


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
    progress: Progress | None = None,
) -> dict[str, Any]:
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

    Returns:
        The report dict that was written.
    """
    from maa_cli.device import resolve_device
    from maa_cli.models.panns import PANNS_FILE, PANNS_URL
    from maa_cli.models.vggish import VGGISH_FILE, VGGISH_URL

    if batch_size < 1:
        raise MaaError(f"--batch-size must be at least 1, got {batch_size}")
    wanted, explicit = parse_metrics(metrics)
    kind, emb_path = parse_embedder(embedder)
    gen, ref = collect_clips(generated, "generated"), collect_clips(reference, "reference")
    pairs = pair_by_name(gen.keys, ref.keys)
    captions = generated_captions(gen, ref, pairs)
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
        same = clap_b is not None and Path(emb_path).expanduser() == Path(clap or "").expanduser()
        if same:
            main = clap_b
        else:  # a second CLAP, only for FD: named apart in the report and the per-file table
            main = clap_backbone(emb_path, dev, memo)
            main.name = "clap-embedder"
    backbones: dict[str, Backbone] = {}
    for b, used_by in ((main, {"fd"}), (panns, {"kl", "is"}), (vgg, {"fad"}), (clap_b, {"clap"})):
        if b is not None and used_by & todo:
            backbones[b.identity] = b
    sides = {}
    for clips in (gen, ref):
        side = inspect_files(clips)
        chosen = [
            b
            for b in backbones.values()
            if clips is gen or not isinstance(b, ClapBackbone) or b is main
        ]
        extract_features(clips, side, chosen, cache, dev, batch_size, progress)
        sides[clips.label] = side
    sg, sr_ = sides["generated"], sides["reference"]

    results: list[dict[str, Any]] = []
    per_gen: dict[str, list[float]] = {}
    for m in wanted:
        if m in blocked:
            names = ["KL_softmax", "KL_sigmoid"] if m == "kl" else [m.upper()]
            results += [_entry(name, None, None, reason=blocked[m]) for name in names]
        elif m == "fd":
            assert main is not None
            key = "embedding" if main is panns else "audio"
            results.append(_frechet("FD", main, key, sg, sr_))
        elif m == "fad":
            assert vgg is not None
            results.append(_frechet("FAD", vgg, "frames", sg, sr_))
        elif m == "kl":
            assert panns is not None
            results += _kl(panns, sg, sr_, pairs, per_gen)
        elif m == "is":
            assert panns is not None
            results.append(_inception(panns, sg))
        elif m == "clap":
            assert clap_b is not None
            results.append(_clap(clap_b, sg, captions, cache, per_gen))
    report = _report(gen, ref, sg, sr_, pairs, results, backbones, cache, out)
    _write(report, gen, ref, sg, sr_, pairs, captions, backbones, per_gen, out)
    return report


# -- metrics over the extracted features ---------------------------------------------------------
def _entry(
    metric: str, value: float | None, backbone: Backbone | None, reason: str = "", **extra: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "metric": metric,
        "value": None if value is None else float(value),
        "backbone": backbone.name if backbone is not None else None,
    }
    entry.update(extra)
    entry.setdefault("notes", [])
    if reason:
        entry["reason"] = reason
    return entry


def _frechet(
    metric: str, b: Backbone, key: str, sg: SideFeatures, sr_: SideFeatures
) -> dict[str, Any]:
    from maa_cli.metrics import frechet_distance_features

    gi, ri = sg.ok(b.identity), sr_.ok(b.identity)
    counts = {"n_generated": len(gi), "n_reference": len(ri)}
    if not gi or not ri:
        return _entry(metric, None, b, reason="no embeddable files on one side", **counts)
    xg = np.concatenate([np.atleast_2d(sg.feats[b.identity][i][key]) for i in gi])
    xr = np.concatenate([np.atleast_2d(sr_.feats[b.identity][i][key]) for i in ri])
    rows = {"rows_generated": len(xg), "rows_reference": len(xr)} if key == "frames" else {}
    what = "frames" if key == "frames" else "files"
    if min(len(xg), len(xr)) < 2:
        return _entry(
            metric,
            None,
            b,
            notes=[],
            **counts,
            **rows,
            reason=f"a covariance needs at least 2 {what} per side, got {len(xg)} generated and "
            f"{len(xr)} reference",
        )
    notes: list[str] = []
    dim = xg.shape[1]
    if min(len(xg), len(xr)) <= dim:
        notes.append(
            f"rank-deficient covariance ({min(len(xg), len(xr))} {what} ≤ {dim} dims): "
            "compare only with runs of the same size"
        )
    value = frechet_distance_features(xg, xr, notes=notes)
    return _entry(metric, value, b, notes=notes, **counts, **rows)


def _kl(
    b: Backbone,
    sg: SideFeatures,
    sr_: SideFeatures,
    pairs: Sequence[tuple[int, int]],
    per_gen: dict[str, list[float]],
) -> list[dict[str, Any]]:
    from maa_cli.metrics import kl_divergence

    ok = [
        (g, r)
        for g, r in pairs
        if sg.feats[b.identity][g] is not None and sr_.feats[b.identity][r] is not None
    ]
    n = len(sg.feats[b.identity])
    out = []
    for kind in ("softmax", "sigmoid"):
        metric = f"KL_{kind}"
        if not ok:
            out.append(
                _entry(
                    metric,
                    None,
                    b,
                    n_paired=0,
                    reason=(
                        "no generated file shares a name with a reference file (KL compares "
                        "each clip with the reference clip of the same name); name them alike"
                    ),
                )
            )
            continue
        p = np.stack([sr_.feats[b.identity][r]["logits"] for _, r in ok])
        q = np.stack([sg.feats[b.identity][g]["logits"] for g, _ in ok])
        values = kl_divergence(p, q, kind)
        col = per_gen.setdefault(f"kl_{kind}", [float("nan")] * n)
        for (g, _), v in zip(ok, values, strict=True):
            col[g] = float(v)
        notes = []
        if len(ok) < n:
            notes.append(f"{n - len(ok)} of {n} generated files have no reference namesake")
        out.append(_entry(metric, float(values.mean()), b, n_paired=len(ok), notes=notes))
    return out


def _inception(b: Backbone, sg: SideFeatures) -> dict[str, Any]:
    from maa_cli.metrics import IS_SPLITS, inception_score

    gi = sg.ok(b.identity)
    if not gi:
        return _entry("IS", None, b, reason="no embeddable generated files", n_generated=0)
    logits = np.stack([sg.feats[b.identity][i]["logits"] for i in gi])
    mean, std, splits = inception_score(logits)
    notes = (
        []
        if splits == IS_SPLITS
        else [f"only {len(gi)} files: {splits} splits instead of {IS_SPLITS}"]
    )
    return _entry("IS", mean, b, std=std, splits=splits, n_generated=len(gi), notes=notes)


def _clap(
    b: ClapBackbone,
    sg: SideFeatures,
    captions: list[str],
    cache: FeatureCache,
    per_gen: dict[str, list[float]],
) -> dict[str, Any]:
    from maa_cli.metrics import clap_scores

    idx = [i for i in sg.ok(b.identity) if captions[i]]
    n = len(captions)
    if not idx:
        return _entry("CLAP", None, b, reason="no embeddable generated clip has a caption")
    text_id = b.identity + "-text"
    digests = [hashlib.sha256(captions[i].encode("utf-8")).hexdigest() for i in idx]
    text: dict[str, np.ndarray] = {}
    pack = cache.load_pack(text_id, digests)
    for j, d in enumerate(digests):
        if (hit := pack[j] if pack else cache.load(text_id, d)) is not None:
            text[d] = hit["text"]
    missing = sorted({(d, captions[i]) for d, i in zip(digests, idx, strict=True) if d not in text})
    if missing:
        emb = b.embed_text([c for _, c in missing])
        for (d, _), e in zip(missing, emb, strict=True):
            text[d] = np.asarray(e, np.float32)
            cache.save(text_id, d, {"text": text[d]})
    if pack is None:
        cache.save_pack(text_id, digests, [{"text": text[d]} for d in digests])
    audio = np.stack([sg.feats[b.identity][i]["audio"] for i in idx])
    scores = clap_scores(audio, np.stack([text[d] for d in digests]))
    col = per_gen.setdefault("clap_score", [float("nan")] * n)
    for i, s in zip(idx, scores, strict=True):
        col[i] = float(s)
    notes = (
        []
        if len(idx) == n
        else [f"{n - len(idx)} of {n} generated files were not scored (no caption or unreadable)"]
    )
    return _entry("CLAP", float(scores.mean()), b, n_generated=len(idx), notes=notes)


# -- report ----------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    import scipy
    import torchaudio

    return {
        "maa": __version__,
        "torch": torch.__version__,
        "torchaudio": torchaudio.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": platform.python_version(),
    }


def side_file(out: str | os.PathLike[str]) -> Path:
    """The per-file Parquet beside ``out``: ``report.json`` → ``report.files.parquet``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.files.parquet")


def _report(
    gen: ClipSet,
    ref: ClipSet,
    sg: SideFeatures,
    sr_: SideFeatures,
    pairs: Sequence[tuple[int, int]],
    results: list[dict[str, Any]],
    backbones: dict[str, Backbone],
    cache: FeatureCache,
    out: str | os.PathLike[str],
) -> dict[str, Any]:
    notes = []
    rates = {c.label: sorted({r for r in s.sample_rates if r}) for c, s in ((gen, sg), (ref, sr_))}
    if rates["generated"] != rates["reference"]:
        notes.append(
            f"sample rates differ (generated {rates['generated']} Hz, reference "
            f"{rates['reference']} Hz); every clip was resampled to each embedder's rate"
        )
    for c, s in ((gen, sg), (ref, sr_)):
        bad = sum(bool(e) for e in s.errors)
        if bad:
            notes.append(f"{bad} {c.label} file(s) could not be read; see the per-file table")
    return {
        "format": REPORT_FORMAT,
        "format_version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "generated": _side_summary(gen, sg, backbones),
        "reference": _side_summary(ref, sr_, backbones),
        "n_paired": len(pairs),
        "metrics": results,
        "backbones": {
            b.name: {"identity": b.identity, "sample_rate": b.known_rate}
            for b in backbones.values()
        },
        "cache": str(cache.root) if cache.root else None,
        "per_file": side_file(out).name,
        "notes": notes,
        "versions": _versions(),
    }


def _side_summary(c: ClipSet, s: SideFeatures, backbones: dict[str, Backbone]) -> dict[str, Any]:
    return {
        "source": c.source,
        "n_files": len(c.paths),
        "n_failed": sum(bool(e) for e in s.errors),
        "n_padded": {backbones[k].name: int(sum(v)) for k, v in s.padded.items()},
        "n_cached": {backbones[k].name: v for k, v in s.cached.items()},
    }


def _write(
    report: dict[str, Any],
    gen: ClipSet,
    ref: ClipSet,
    sg: SideFeatures,
    sr_: SideFeatures,
    pairs: Sequence[tuple[int, int]],
    captions: list[str],
    backbones: dict[str, Backbone],
    per_gen: dict[str, list[float]],
    out: str | os.PathLike[str],
) -> None:
    import pandas as pd

    from maa_cli.fsutil import atomic_path, write_json_atomic

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partner = {
        "generated": {g: ref.keys[r] for g, r in pairs},
        "reference": {r: gen.keys[g] for g, r in pairs},
    }
    frames = []
    for c, s in ((gen, sg), (ref, sr_)):
        n = len(c.paths)
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
            values = per_gen.get(name) if c is gen else None
            cols[name] = values if values is not None else [float("nan")] * n
        frames.append(pd.DataFrame(cols))
    table = pd.concat(frames, ignore_index=True)
    with atomic_path(side_file(out)) as tmp:
        table.to_parquet(tmp, index=False)
    write_json_atomic(out, report)
