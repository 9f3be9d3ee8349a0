"""Realistic synthetic audio for tests, benchmarks and demos (no files needed).

Each generator returns a mono float32 waveform ``(T,)`` in [-1, 1].
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from maa.audio import write_audio


def tone(
    freq: float, seconds: float, sr: int, harmonics: int = 1, amp: float = 0.5
) -> torch.Tensor:
    """A (harmonic) tone at ``freq`` Hz with a short fade in/out."""
    t = torch.arange(int(seconds * sr)) / sr
    wave = sum(torch.sin(2 * math.pi * freq * k * t) / k for k in range(1, harmonics + 1))
    return _fade(amp * wave / max(1.0, float(wave.abs().max())), sr)


def noise(
    seconds: float, sr: int, amp: float = 0.3, seed: int = 0, lowpass: bool = False
) -> torch.Tensor:
    """White (or one-pole low-passed, "rumble") noise."""
    g = torch.Generator().manual_seed(seed)
    wave = torch.randn(int(seconds * sr), generator=g)
    if lowpass:
        from maa.dsp import lowpass

        wave = lowpass(wave, sr, 400.0)
    return _fade(amp * wave / wave.abs().max().clamp_min(1e-6), sr)


def chirp(f0: float, f1: float, seconds: float, sr: int, amp: float = 0.5) -> torch.Tensor:
    """A linear sweep from ``f0`` to ``f1`` Hz."""
    t = torch.arange(int(seconds * sr)) / sr
    phase = 2 * math.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t**2)
    return _fade(amp * torch.sin(phase), sr)


def bursts(seconds: float, sr: int, rate_hz: float = 4.0, seed: int = 0) -> torch.Tensor:
    """Noise bursts with decaying envelopes (footstep/knock-like)."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * sr)
    wave = torch.zeros(n)
    period = int(sr / rate_hz)
    env = torch.exp(-torch.arange(period) / (0.02 * sr))
    for start in range(0, n - period, period):
        wave[start : start + period] += env * torch.randn(period, generator=g)
    return _fade(0.5 * wave / wave.abs().max().clamp_min(1e-6), sr)


def _fade(wave: torch.Tensor, sr: int, ms: float = 10.0) -> torch.Tensor:
    n = min(int(sr * ms / 1000), wave.numel() // 2)
    if n > 0:
        ramp = torch.linspace(0, 1, n)
        wave = wave.clone()
        wave[:n] *= ramp
        wave[-n:] *= ramp.flip(0)
    return wave.float()


def make_clips(
    sr: int = 22050, seconds: float = 1.0, per_kind: int = 2
) -> dict[str, list[torch.Tensor]]:
    """Several clips per kind: high tone, low tone, noise, chirp, bursts (labelled by kind)."""
    out: dict[str, list[torch.Tensor]] = {}
    for i in range(per_kind):
        out.setdefault("high tone", []).append(tone(1760 + 110 * i, seconds, sr, harmonics=2))
        out.setdefault("low tone", []).append(tone(110 + 20 * i, seconds, sr, harmonics=4))
        out.setdefault("white noise", []).append(noise(seconds, sr, seed=i))
        out.setdefault("rising chirp", []).append(chirp(200, 4000, seconds, sr))
        out.setdefault("knocking", []).append(bursts(seconds, sr, seed=i))
    return out


def write_clip_folder(
    root: str | Path, sr: int = 22050, seconds: float = 1.0, per_kind: int = 2, ext: str = ".wav"
) -> list[Path]:
    """Write :func:`make_clips` under ``root/<kind>/<kind>_<i>.wav``; returns the paths."""
    root = Path(root)
    paths = []
    for kind, clips in make_clips(sr, seconds, per_kind).items():
        folder = root / kind.replace(" ", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for i, wave in enumerate(clips):
            paths.append(write_audio(folder / f"{kind.replace(' ', '_')}_{i}{ext}", wave, sr))
    return paths


def tiny_bundle(root: str | Path, with_clap: bool = True) -> Path:
    """A complete bundle of random tiny models on the ``default`` mel preset — tiny VAE and U-Net,
    the packaged MiniLM, optionally a tiny CLAP and two recorded categories — for tests and
    demos of the whole generate path on CPU (it makes noise, not sound)."""
    from maa.bundle import Bundle
    from maa.mel import get_mel_preset
    from maa.models.clap import Clap, get_clap_config
    from maa.models.unet import NoiseSchedule, build_unet, get_unet_config
    from maa.models.vae import VAE_PRESETS, build_vae
    from maa.text import load_text_encoder

    torch.manual_seed(0)
    bundle = Bundle.create(Path(root), get_mel_preset("default"))
    vae_cfg = VAE_PRESETS["tiny"]
    bundle.save_module("vae", build_vae(vae_cfg), "vae", vae_cfg.to_dict())
    ref, enc_cfg = load_text_encoder("minilm").reference()
    bundle.set_reference("text_encoder", "text_encoder", ref, enc_cfg)
    unet_cfg = get_unet_config("tiny").with_text_width(384)
    cats = {
        "rain": {"clips": 3, "captions": ["rain falling steadily", "heavy rain"]},
        "dog": {"clips": 2, "captions": ["a dog barking"]},
    }
    extra = {"scale_factor": 0.8, "schedule": NoiseSchedule().to_dict(), "categories": cats}
    bundle.save_module("unet", build_unet(unet_cfg), "unet", unet_cfg.to_dict(), extra)
    if with_clap:
        clap_cfg = get_clap_config("tiny")
        bundle.save_module("clap", Clap(clap_cfg), "clap", clap_cfg.to_dict())
    return Path(root)
