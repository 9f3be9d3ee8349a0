"""CLAP models behind one interface: the toolkit's own trainable CLAP and a pretrained HF one.

Every CLAP here is a :class:`~maa.models.clap.ClapInference` and exposes

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

import torch
from torch import nn

from maa.bundle import BUNDLE_FILE, Bundle
from maa.errors import MaaError
from maa.models.clap import (
    Clap,
    ClapConfig,
    ClapInference,
    WaveInput,
    analysis_windows,
    get_clap_config,
    quiet_loading,
)
from maa.system import ASSETS

__all__ = [
    "Clap",
    "ClapConfig",
    "ClapInference",
    "PretrainedClap",
    "WaveInput",
    "default_clap",
    "find_default_clap",
    "get_clap_config",
    "load_clap",
]


class PretrainedClap(ClapInference, nn.Module):
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

    def _windows(self, wave: torch.Tensor) -> torch.Tensor:
        # long clips: our own evenly spaced windows, so the extractor never crops at random
        return analysis_windows(wave, self.max_samples, self.max_windows, tile=False)

    def _embed_windows(self, windows: list[torch.Tensor]) -> torch.Tensor:
        feats = self.feature_extractor(
            [w.numpy() for w in windows],
            sampling_rate=self.sample_rate,
            truncation=self.truncation,
            return_tensors="pt",
        )
        if "is_longer" in feats:
            # the extractor flags a random clip as "longer" when none is (a training trick);
            # no window exceeds max_samples, so the true flag is False for every one
            feats["is_longer"] = torch.zeros_like(feats["is_longer"])
        feats = {k: v.to(self.device) for k, v in feats.items()}
        emb = _pooled(self.model.get_audio_features(**feats)).float().cpu()
        return nn.functional.normalize(emb, dim=-1)

    def text_embedding(self, texts: list[str]) -> torch.Tensor:
        """Captions → ``(B, D)`` L2-normalised text embeddings (on the model's device)."""
        tok = self.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        tok = {k: v.to(self.device) for k, v in tok.items() if k != "token_type_ids"}
        return nn.functional.normalize(_pooled(self.model.get_text_features(**tok)).float(), dim=-1)


def _pooled(res: object) -> torch.Tensor:
    # transformers ≥ 5 returns a model output whose pooler_output holds the projected features;
    # older releases returned the tensor itself
    return res.pooler_output if hasattr(res, "pooler_output") else res  # type: ignore[return-value]


def load_clap(spec: str | os.PathLike[str], device: str | torch.device = "cpu") -> ClapInference:
    """Open a CLAP: a bundle folder with a ``clap`` component, or a local HF ``ClapModel`` folder.

    The model is returned in eval mode on ``device``.
    """
    path = Path(spec).expanduser()
    hint = (
        "pass a bundle folder written by `maa train-clap --out DIR`, or a local Hugging Face "
        "ClapModel folder (config.json with model_type 'clap' plus weights)"
    )
    if not path.exists():
        raise MaaError(f"{path}: no such file or folder; {hint}")
    if not path.is_dir():
        raise MaaError(f"{path}: is a file, not a folder; {hint}")
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
    return model.to(device).eval()  # type: ignore[return-value]


CLAP_ENV = "MAA_CLAP"


def find_default_clap() -> Path | None:
    """The CLAP to use when none is passed: ``$MAA_CLAP``, else the shipped one (a bundle at
    ``maa/assets/clap`` with a ``clap`` component), else ``None``."""
    if env := os.environ.get(CLAP_ENV):
        return Path(env).expanduser()
    shipped = ASSETS / "clap"
    return shipped if (shipped / BUNDLE_FILE).is_file() else None


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
