"""Evaluation inputs and features: clip sets, name pairing, embedder backbones and the cache.

Used by :mod:`maa.stages.evaluate`. Each clip is decoded once, resampled to every embedder's rate
and embedded whole; features are cached per (embedder weights, file content) hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from maa.errors import MaaError
from maa.fsutil import atomic_path, write_json_atomic

FEATURES_VERSION = "2"  # bump when decoding/padding/resampling changes: old cache entries die
CHUNK_FILES = 32  # files decoded at a time (bounds memory; batches are formed inside a chunk)
Progress = Callable[[str, int, int], None]  # (label, done, total), e.g. maa.progress.ProgressBar
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
    from maa.audio import AUDIO_EXTENSIONS, find_audio_files
    from maa.manifest import audio_paths, read_manifest

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
        """A clip ``(T,)`` at :attr:`sample_rate` → the model's input, and whether it was padded."""
        return wave, False

    @abstractmethod
    def embed(self, waves: torch.Tensor, device: torch.device) -> list[dict[str, np.ndarray]]:
        """Equal-length waves ``(B, T)`` at :attr:`sample_rate` → one feature dict per clip."""


def _pad_end(wave: torch.Tensor, samples: int) -> tuple[torch.Tensor, bool]:
    short = wave.shape[-1] < samples
    return (F.pad(wave, (0, samples - wave.shape[-1])) if short else wave), short


class PannsBackbone(Backbone):
    name = "panns-cnn14-16k"

    def prepare(self, wave: torch.Tensor) -> tuple[torch.Tensor, bool]:
        # the reference's preparation: DC offset removed, zero-padded at the end to 2 s
        return _pad_end(wave - wave.mean(), self.model.cfg.min_samples)

    @torch.inference_mode()
    def embed(self, waves: torch.Tensor, device: torch.device) -> list[dict[str, np.ndarray]]:
        out = self.model.to(device)(waves.to(device))
        emb, logits = out.embedding.float().cpu().numpy(), out.logits.float().cpu().numpy()
        return [{"embedding": e, "logits": lg} for e, lg in zip(emb, logits, strict=True)]


class VggishBackbone(Backbone):
    name = "vggish"

    def prepare(self, wave: torch.Tensor) -> tuple[torch.Tensor, bool]:
        # the reference silently skips clips shorter than one example; we pad them and say so
        return _pad_end(wave, self.model.cfg.min_samples)

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
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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
        with contextlib.suppress(OSError, MaaError):  # a read-only home costs only re-hashing
            memo.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(memo, dict(list(known.items())[-256:]))
    return known[key]


def _identity(name: str, *parts: str) -> str:
    """Cache namespace: the weights' hash plus everything else that shapes the features (our
    preprocessing version, which covers our resampler and filterbanks)."""
    parts = (FEATURES_VERSION, *parts)
    return f"{name}-{hashlib.sha256('|'.join(parts).encode()).hexdigest()[:20]}"


def panns_backbone(path: str | os.PathLike[str], memo: Path | None = None) -> PannsBackbone:
    from maa.models.panns import PANNS_FILE, load_panns

    p = _existing(path, f"--embedder panns:PATH (the official {PANNS_FILE})")
    return PannsBackbone(_identity("panns", weights_digest(p, memo)), 16000, lambda: load_panns(p))


def vggish_backbone(path: str | os.PathLike[str], memo: Path | None = None) -> VggishBackbone:
    from maa.models.vggish import VGGISH_FILE, load_vggish

    p = _existing(path, f"--vggish PATH (torchvggish's {VGGISH_FILE})")
    ident = _identity("vggish", weights_digest(p, memo))
    return VggishBackbone(ident, 16000, lambda: load_vggish(p))


def clap_backbone(
    spec: str | os.PathLike[str], device: torch.device, memo: Path | None = None
) -> ClapBackbone:
    """A CLAP (bundle folder or Hugging Face ``ClapModel`` folder) as a backbone.

    The model loads on first use (a cached re-run never loads it) when its sample rate can be
    read from the folder's JSON; otherwise it is loaded now, which also validates the folder.
    """
    from maa.clap import load_clap

    path = _existing(spec, "--clap PATH|BUNDLE", folder=True)
    ident, rate = _identity("clap", *_clap_fingerprint(path, memo)), _clap_rate_hint(path)
    backbone = ClapBackbone(ident, rate, lambda: load_clap(path, device=device))
    if rate is None:
        backbone.sample_rate  # noqa: B018 (loads and validates the CLAP)
    return backbone


def _clap_rate_hint(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        bundle = json.loads((path / "bundle.json").read_text(encoding="utf-8"))
        if "clap" in bundle.get("components", {}):
            return int(bundle["mel"]["sample_rate"])
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
        try:  # a missing entry raises OSError; a damaged one is recomputed, never trusted
            with np.load(self._path(identity, digest)) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):
            return None

    def save(self, identity: str, digest: str, arrays: dict[str, np.ndarray]) -> None:
        if self.root is None:
            return
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

    def load_all(self, identity: str, digests: Sequence[str]) -> tuple[list[dict | None], bool]:
        """The entries of ``digests`` (None where absent) from their pack, else one by one; and
        whether the pack held them (then no new pack is needed)."""
        pack = self.load_pack(identity, digests)
        if pack is not None:
            return list(pack), True
        return [self.load(identity, d) for d in digests], False

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
    from maa.audio import audio_info
    from maa.errors import AudioError

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
    from maa.audio import load_audio, resample
    from maa.errors import AudioError

    n = len(clips.paths)
    readable = [i for i in range(n) if not side.errors[i]]
    packed: set[str] = set()
    for b in backbones:
        feats: list[dict[str, np.ndarray] | None] = [None] * n
        padded = [False] * n
        hits, from_pack = cache.load_all(b.identity, [side.digests[i] for i in readable])
        for i, hit in zip(readable, hits, strict=True):
            if hit is not None:
                padded[i] = bool(hit.pop("padded", False))
                feats[i] = hit
        if from_pack:
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
        if progress is not None:
            progress(f"embedding {clips.label}", start, len(todo))
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
    if progress is not None and todo:
        progress(f"embedding {clips.label}", len(todo), len(todo))
    for b in backbones:  # one pack per set for the next run
        done = side.ok(b.identity)
        if b.identity not in packed and done:
            entries = [
                {**side.feats[b.identity][i], "padded": np.array(side.padded[b.identity][i])}
                for i in done
            ]
            cache.save_pack(b.identity, [side.digests[i] for i in done], entries)
