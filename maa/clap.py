"""CLAP models behind one interface: the toolkit's own trainable CLAP and a pretrained HF one.

Every CLAP here exposes

* ``sample_rate`` — the rate (Hz) its audio tower works at;
* ``embed_audio(wave, sr) -> (B, D)`` — ``wave`` is ``(B, T)`` or a list of ``(T,)`` tensors
  at ``sr`` Hz (resampled to ``sample_rate``); rows are L2-normalised;
* ``embed_text(texts) -> (B, D)`` — L2-normalised;
* ``score(wave, sr, texts) -> (B,)`` — cosine of each clip with its own caption.

All three run under ``torch.inference_mode`` in batches. :func:`load_clap` opens either a
bundle folder with a ``clap`` component (``maa train-clap``) or a local Hugging Face
``ClapModel`` folder (``config.json`` + weights + processor files).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from maa.errors import MaaError
from maa.models.clap import (
    Clap,
    ClapConfig,
    WaveInput,
    analysis_windows,
    as_wave_list,
    get_clap_config,
    matched_cosine,
    quiet_loading,
)

__all__ = [
    "Clap",
    "ClapConfig",
    "ClapLike",
    "PretrainedClap",
    "WaveInput",
    "default_clap",
    "find_default_clap",
    "get_clap_config",
    "load_clap",
]


@runtime_checkable
class ClapLike(Protocol):
    """What distill, evaluate and reranking rely on."""

    sample_rate: int

    def embed_audio(self, wave: WaveInput, sr: int) -> torch.Tensor: ...

    def embed_text(self, texts: list[str]) -> torch.Tensor: ...

    def score(self, wave: WaveInput, sr: int, texts: list[str]) -> torch.Tensor: ...


class PretrainedClap(nn.Module):
    """A local Hugging Face ``ClapModel`` folder (e.g. a copy of ``laion/clap-htsat-unfused``).

    Audio goes through the folder's own feature extractor (48 kHz, fused or unfused HTSAT),
    text through its tokenizer; embeddings are the model's projected, L2-normalised features.
    """

    def __init__(
        self, folder: str | os.PathLike[str], batch_size: int = 32, max_windows: int = 3
    ) -> None:
        super().__init__()
        from transformers import ClapModel, ClapProcessor

        folder = Path(folder)
        try:
            with quiet_loading():
                self.model = ClapModel.from_pretrained(str(folder), local_files_only=True)
            processor = ClapProcessor.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise MaaError(
                f"{folder}: could not load a Hugging Face ClapModel with its processor ({exc}); "
                "the folder needs config.json, the weights and the processor/tokenizer files "
                "(as written by ClapModel.save_pretrained + ClapProcessor.save_pretrained)"
            ) from exc
        self.model.eval()
        self.feature_extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.folder = folder
        self.batch_size = batch_size
        self.sample_rate = int(self.feature_extractor.sampling_rate)
        self.max_samples = int(self.feature_extractor.nb_max_samples)
        self.max_windows = max_windows
        self.embed_dim = int(self.model.config.projection_dim)
        # "fusion" models take the 4-channel fused input; unfused ones a single mel
        fused = bool(getattr(self.model.config.audio_config, "enable_fusion", False))
        self.truncation = "fusion" if fused else "rand_trunc"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def embed_audio(self, wave: WaveInput, sr: int) -> torch.Tensor:
        """Clips at ``sr`` Hz → ``(B, D)`` L2-normalised audio embeddings (on CPU)."""
        clips = as_wave_list(wave, sr, self.sample_rate)
        if not clips:
            return torch.zeros(0, self.embed_dim)
        # long clips: our own evenly spaced windows, so the extractor never crops at random
        wins = [analysis_windows(c, self.max_samples, self.max_windows, tile=False) for c in clips]
        owner = torch.cat([torch.full((len(w),), i) for i, w in enumerate(wins)])
        flat = [w for ws in wins for w in ws]
        out = []
        for i in range(0, len(flat), self.batch_size):
            chunk = [w.numpy() for w in flat[i : i + self.batch_size]]
            feats = self.feature_extractor(
                chunk,
                sampling_rate=self.sample_rate,
                truncation=self.truncation,
                return_tensors="pt",
            )
            if "is_longer" in feats:
                # the extractor flags a random clip as "longer" when none is (a training trick);
                # no window exceeds max_samples, so the true flag is False for every one
                feats["is_longer"] = torch.zeros_like(feats["is_longer"])
            feats = {k: v.to(self.device) for k, v in feats.items()}
            out.append(_pooled(self.model.get_audio_features(**feats)).float().cpu())
        emb = nn.functional.normalize(torch.cat(out), dim=-1)
        summed = torch.zeros(len(clips), emb.shape[1]).index_add_(0, owner, emb)
        return nn.functional.normalize(summed, dim=-1)

    @torch.inference_mode()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        """Captions → ``(B, D)`` L2-normalised text embeddings (on CPU)."""
        texts = _check_texts(texts)
        if not texts:
            return torch.zeros(0, self.embed_dim)
        out = []
        for i in range(0, len(texts), self.batch_size):
            tok = self.tokenizer(
                texts[i : i + self.batch_size], padding=True, truncation=True, return_tensors="pt"
            )
            tok = {k: v.to(self.device) for k, v in tok.items() if k != "token_type_ids"}
            out.append(_pooled(self.model.get_text_features(**tok)))
        return nn.functional.normalize(torch.cat(out).float(), dim=-1).cpu()

    @torch.inference_mode()
    def score(self, wave: WaveInput, sr: int, texts: list[str]) -> torch.Tensor:
        """Cosine of each clip with its own caption, ``(B,)``."""
        return matched_cosine(self, wave, sr, texts)


def _pooled(res: object) -> torch.Tensor:
    # transformers ≥ 5 returns a model output whose pooler_output holds the projected features;
    # older releases returned the tensor itself
    return res.pooler_output if hasattr(res, "pooler_output") else res  # type: ignore[return-value]


def _check_texts(texts: list[str]) -> list[str]:
    if isinstance(texts, str):
        raise MaaError("embed_text expects a list of captions, got a single string")
    return [str(t) for t in texts]


def load_clap(spec: str | os.PathLike[str], device: str | torch.device = "cpu") -> ClapLike:
    """Open a CLAP: a bundle folder with a ``clap`` component, or a local HF ``ClapModel`` folder.

    The model is returned in eval mode on ``device``.
    """
    from maa.bundle import BUNDLE_FILE, Bundle

    path = Path(spec).expanduser()
    hint = (
        "pass a bundle folder written by `maa train-clap --out DIR`, or a local Hugging Face "
        "ClapModel folder (config.json with model_type 'clap' plus weights)"
    )
    if not path.exists():
        raise MaaError(f"{path}: no such file or folder; {hint}")
    if not path.is_dir():
        raise MaaError(f"{path}: is a file, not a folder; {hint}")
    dev = torch.device(device)
    if (path / BUNDLE_FILE).is_file():
        bundle = Bundle.open(path)
        if not bundle.has("clap"):
            have = ", ".join(sorted(bundle.components)) or "nothing"
            raise MaaError(
                f"{path}: bundle has no 'clap' component (it has {have}); train one with "
                f"`maa train-clap --manifest M.parquet --out {path}` or {hint}"
            )
        model: nn.Module = Clap.from_bundle(bundle)
    elif _is_hf_clap(path):
        model = PretrainedClap(path)
    else:
        raise MaaError(f"{path}: neither a maa bundle with a CLAP nor a Hugging Face CLAP; {hint}")
    return model.to(dev).eval()  # type: ignore[return-value]


CLAP_ENV = "MAA_CLAP"


def find_default_clap() -> Path | None:
    """The CLAP to use when none is passed: ``$MAA_CLAP``, else the shipped one (a bundle at
    ``maa/assets/clap`` with a ``clap`` component), else ``None``."""
    from maa.system import ASSETS

    env = os.environ.get(CLAP_ENV)
    if env:
        return Path(env).expanduser()
    shipped = ASSETS / "clap"
    return shipped if (shipped / "bundle.json").is_file() else None


def default_clap() -> Path:
    """:func:`find_default_clap`, or an error that says what to pass."""
    found = find_default_clap()
    if found is None:
        raise MaaError(
            "no CLAP given and none is shipped; pass --clap with a bundle from "
            "`maa train-clap --out DIR` or a local Hugging Face ClapModel folder "
            f"(or set ${CLAP_ENV})"
        )
    return found


def _is_hf_clap(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MaaError(f"{cfg}: not valid JSON ({exc})") from exc
    return isinstance(data, dict) and data.get("model_type") == "clap"
