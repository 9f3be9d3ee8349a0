"""Audio in, audio out: how an edit of an input changes sampling, for any bundle.

* **SDEdit** (:func:`restyle`, ``maa generate --init-audio FILE --strength S``; Meng et al. 2022,
  Make-An-Audio's personalised generation, AudioLDM's style transfer): the input's latent is
  noised to the step where ``S × steps`` steps remain and denoised with the prompt from there.
* **Zero-shot inpainting** (:mod:`maa.inpaint`): after every step the known region is replaced by
  the input's latent noised to that step, ``x = m·x + (1 − m)·q(x0, t)`` with ``m = 1`` where
  sound is generated; an inpainting U-Net sees the known latent as input instead
  (:func:`unet_input`).
* **Loops** (:func:`sample_loop`): the latent's time axis is circular — at every step the U-Net
  sees each end of the clip next to the other, and the decoder and vocoder run over a wrapped
  copy whose continuation past the end is faded into the start, so the end flows into the start.

:class:`LatentEdit` carries all three into :meth:`maa.generate.Generator.sample`;
:func:`loop_seam` measures how well a clip joins its own start.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from maa.audio import audio_info, load_audio, require_length
from maa.errors import AudioError, BundleError, MaaError
from maa.fsutil import atomic_path
from maa.generate import MAX_SECONDS, GeneratedAudio, Generator, SamplingSettings
from maa.generate import loudness_normalize as normalize_loudness
from maa.mel import MelPreset, MelSpectrogram

DEFAULT_STRENGTH = 0.3  # Make-An-Audio's release; AudioLDM's style transfer uses 0.5
LOOP_FADE_S = 0.05  # the continuation past a loop's end is faded into its start over this long
LOOP_MIN_WRAP = 2  # latent frames of circular context on each side, at least
DEFAULT_WINDOW_S = 10.0  # sampling window of a bundle that records no training crop
SEAM_RANGE = {"ln": math.log(1000.0), "log10": 3.0}  # 60 dB of magnitude below the loudest cell


def load_input(
    path: str | os.PathLike[str], mel: MelPreset, log: Callable[[str], None] | None = None
) -> torch.Tensor:
    """An input to edit as a mono ``(T,)`` waveform at the preset's rate: down-mixed and
    resampled (each said once through ``log``); a silent file, one shorter than a latent frame or
    longer than 60 s is an :class:`~maa.errors.AudioError` naming it."""
    sample_rate = mel.sample_rate
    info = audio_info(path)
    if log is not None and info.channels > 1:
        log(f"note: {path} has {info.channels} channels; they are mixed down to mono")
    if log is not None and info.sample_rate != sample_rate:
        log(f"note: {path} is at {info.sample_rate} Hz; resampled to the bundle's {sample_rate} Hz")
    if info.duration > MAX_SECONDS:
        raise AudioError(
            f"{path}: {info.duration:.1f} s is longer than the {MAX_SECONDS:.0f} s an edit "
            "handles in one piece; cut the part to edit out first"
        )
    try:
        wave, _ = load_audio(path, sample_rate, allow_silent=False)
    except AudioError as exc:
        if "silent" not in str(exc):
            raise
        raise AudioError(f"{exc}; there is nothing to edit in it") from None
    require_length(wave, sample_rate, mel.latent_frame_samples, str(path))
    return wave


def window_frames(gen: Generator) -> int:
    """Mel frames one sampling window spans: the crop the bundle's U-Net was trained on (from
    ``train-ldm``; else its config's ``crop_seconds``, else 10 s)."""
    bundle = getattr(gen, "bundle", None)
    entry = bundle.component("unet") if bundle is not None and bundle.has("unet") else {}
    if entry.get("crop_frames"):
        return int(entry["crop_frames"])
    seconds = entry.get("config", {}).get("crop_seconds") or DEFAULT_WINDOW_S
    return gen.mel.frames_for_seconds(float(seconds))


def latent_frames(gen: Generator, seconds: float) -> int:
    """Mel frames under the latent :meth:`Generator.sample` draws for ``seconds`` of audio."""
    return gen.latent_shape(seconds)[time_dim(gen)] * gen.vae.downsample


def time_dim(gen: Generator) -> int:
    """The latent axis that runs along time (``-1``; ``-2`` for a time-major VAE)."""
    return -2 if getattr(getattr(gen.vae, "cfg", None), "time_major", False) else -1


def latent_grid(mask: torch.Tensor, gen: Generator) -> torch.Tensor:
    """A mel-grid mask ``(n_mels, F)`` (1 = generate) → ``(1, 1, H, W)`` on the latent grid: a
    latent cell is generated when any mel cell it covers is."""
    d = gen.vae.downsample
    cells = nn.functional.max_pool2d(mask[None, None].float(), d)
    return cells.transpose(-1, -2) if time_dim(gen) == -2 else cells


@torch.no_grad()
def encode_wave(
    gen: Generator, wave: torch.Tensor, frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveform ``(T,)`` → (scaled latents ``(1, z, H, W)`` of its log-mel padded with silence to
    ``frames`` mel frames, its log-mel ``(n_mels, T // hop)`` on the CPU). The posterior mode is
    used: the input as the VAE sees it, without sampling noise."""
    logmel = MelSpectrogram(gen.mel).to(gen.device)(wave.to(gen.device))
    padded = nn.functional.pad(logmel, (0, frames - logmel.shape[-1]), value=gen.mel.floor)
    latents = gen.vae.encode(padded.to(gen.dtype)).mode().float() * gen.scale_factor
    return latents, logmel[0].float().cpu()


def mel_of(gen: Generator, wave: torch.Tensor) -> torch.Tensor:
    """The log-mel ``(n_mels, T // hop)`` of a waveform, with the bundle's preset."""
    return MelSpectrogram(gen.mel)(wave.float().cpu())[0]


def unet_input(
    x: torch.Tensor, known: torch.Tensor | None, mask: torch.Tensor | None, in_channels: int
) -> torch.Tensor:
    """The U-Net's input for the scaled latents ``x (B, z, H, W)`` of an edit.

    A text-to-audio U-Net (``in_channels == z``) sees ``x`` alone: zero-shot editing works on it
    from outside. An inpainting U-Net (``in_channels == 2z + 1``, the layout of ``train-ldm
    --task inpaint``) sees ``[x, known · (1 − m), m]``: the input's latent where it is kept and
    the mask (``m = 1`` where sound is generated; no mask: everything is generated).
    """
    z = x.shape[1]
    if in_channels == z:
        return x
    if in_channels != 2 * z + 1:
        raise BundleError(
            f"the U-Net takes {in_channels} input channels; an edit needs {z} (a text-to-audio "
            f"U-Net) or {2 * z + 1} (an inpainting U-Net: latent, masked latent, mask)"
        )
    b = x.shape[0]
    m = torch.ones_like(x[:, :1]) if mask is None else mask.to(x).expand(b, 1, *x.shape[2:])
    kept = torch.zeros_like(x) if known is None else known.to(x).expand_as(x) * (1 - m)
    return torch.cat([x, kept, m], dim=1)


def circular_pad(x: torch.Tensor, wrap: int, dim: int) -> torch.Tensor:
    """``x`` with its last ``wrap`` steps along ``dim`` before it and its first ``wrap`` after."""
    n = x.shape[dim]
    return torch.cat([x.narrow(dim, n - wrap, wrap), x, x.narrow(dim, 0, wrap)], dim=dim)


@dataclass
class LatentEdit:
    """One edit of sampling (:class:`maa.generate.SamplingEdit`): ``known`` scaled latents
    ``(1, z, H, W)`` of the input, ``mask (1, 1, H, W)`` (1 = generate; ``None``: all), the first
    step ``start`` of the schedule (SDEdit), ``wrap`` latent frames of circular context (loops,
    along ``dim``, with ``loop_fade`` samples faded at the join) and a ``finisher`` applied to each
    candidate's waveform (the input pasted back)."""

    in_channels: int
    known: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    start: int = 0
    wrap: int = 0
    dim: int = -1
    loop_fade: int = 0
    finisher: Callable[[torch.Tensor], torch.Tensor] | None = None
    _noise: torch.Tensor | None = field(default=None, init=False, repr=False)

    def _known(self, like: torch.Tensor) -> torch.Tensor:
        assert self.known is not None
        return self.known.to(like).expand_as(like)

    def begin(self, sched: Any, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._noise = noise
        first = self.start * getattr(sched, "order", 1)
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(first)
        timesteps = sched.timesteps[first:]
        if self.start == 0 or self.known is None:  # strength 1: the input plays no part
            return noise * sched.init_noise_sigma, timesteps
        t = timesteps[:1].repeat(noise.shape[0])
        return sched.add_noise(self._known(noise), noise, t), timesteps

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        x = unet_input(x, self.known, self.mask, self.in_channels)
        return circular_pad(x, self.wrap, self.dim) if self.wrap else x

    def model_output(self, eps: torch.Tensor) -> torch.Tensor:
        if not self.wrap:
            return eps
        return eps.narrow(self.dim, self.wrap, eps.shape[self.dim] - 2 * self.wrap)

    def after_step(
        self, sched: Any, timesteps: torch.Tensor, i: int, x: torch.Tensor
    ) -> torch.Tensor:
        # an inpainting U-Net is given the known latent instead of having it imposed
        if self.mask is None or self.known is None or self.in_channels != x.shape[1]:
            return x
        known = self._known(x)
        if i + 1 < len(timesteps):  # x is now at the next timestep's noise level
            t = timesteps[i + 1 : i + 2].repeat(x.shape[0])
            known = sched.add_noise(known, self._noise, t)
        m = self.mask.to(x)
        return m * x + (1 - m) * known

    def decode(self, gen: Generator, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.wrap:
            return gen.decode(latents)
        # decode and vocode a wrapped copy, keep one period and fade what follows its end (the
        # sound that continues the last sample) into its start: the end then runs into the start
        d, hop = gen.vae.downsample, gen.mel.hop_length
        logmel, wave = gen.decode(circular_pad(latents, self.wrap, self.dim))
        first, frames = self.wrap * d, latents.shape[self.dim] * d
        logmel = logmel[..., first : first + frames]
        start, n = first * hop, frames * hop
        period = wave[..., start : start + n].clone()
        fade = min(self.loop_fade, self.wrap * d * hop, n)
        if fade > 0:
            ramp = torch.linspace(0.0, 1.0, fade, device=wave.device)
            after = wave[..., start + n : start + n + fade]
            period[..., :fade] = period[..., :fade] * ramp + after * (1 - ramp)
        return logmel, period

    def finish(self, wave: torch.Tensor) -> torch.Tensor:
        return self.finisher(wave) if self.finisher is not None else wave


def check_strength(strength: float) -> float:
    """``strength`` as a float in [0, 1], or an error naming ``--strength``."""
    if not 0.0 <= float(strength) <= 1.0:
        raise MaaError(
            f"--strength must lie in [0, 1] (0 keeps the input, 1 ignores it), got {strength}"
        )
    return float(strength)


def restyle(
    gen: Generator,
    prompts: list[str],
    settings: SamplingSettings,
    init: torch.Tensor,
    strength: float = DEFAULT_STRENGTH,
    seed_offset: int = 0,
) -> list[GeneratedAudio]:
    """SDEdit: one clip per prompt, each the input ``init (T,)`` (at the bundle's rate) noised to
    the step where ``⌊strength · steps⌋`` steps remain and denoised with the prompt; the clips
    last as long as the input. Strength 0 (or fewer than one step) returns the input through the
    vocoder (mel → vocoder, no VAE); strength 1 is plain generation with the same seed."""
    strength = check_strength(strength)
    sr = gen.mel.sample_rate
    settings = replace(settings, duration=init.numel() / sr)
    steps = min(int(settings.steps * strength), settings.steps)
    if steps == 0:  # the last partial hop is padded with silence so the length is kept
        hop = gen.mel.hop_length
        logmel = mel_of(gen, nn.functional.pad(init, (0, -init.numel() % hop)))
        wave = gen.vocoder(logmel)[: init.numel()]
        wave = normalize_loudness(wave, sr) if settings.normalize else wave.clamp(-1, 1)
        return [GeneratedAudio(wave, sr, p, settings.seed + seed_offset + i, None, logmel)
                for i, p in enumerate(prompts)]  # fmt: skip
    known, _ = encode_wave(gen, init, latent_frames(gen, settings.duration))
    edit = LatentEdit(gen.unet.config.in_channels, known=known, start=settings.steps - steps,
                      dim=time_dim(gen))  # fmt: skip
    return gen.sample(prompts, settings, seed_offset, edit=edit)


def sample_loop(
    gen: Generator, prompts: list[str], settings: SamplingSettings, seed_offset: int = 0
) -> list[GeneratedAudio]:
    """One seamless loop per prompt: the clip's end runs into its start. Its length is
    ``settings.duration`` rounded up to whole latent frames (8 × 256 samples on the default
    preset), so that the period is the latent's."""
    settings = replace(settings, duration=loop_duration(gen, settings.duration))
    width = latent_frames(gen, settings.duration) // gen.vae.downsample
    wrap = min(width, max(LOOP_MIN_WRAP, width // 4))
    edit = LatentEdit(gen.unet.config.in_channels, wrap=wrap, dim=time_dim(gen),
                      loop_fade=round(LOOP_FADE_S * gen.mel.sample_rate))  # fmt: skip
    return gen.sample(prompts, settings, seed_offset, edit)


def loop_duration(gen: Generator, seconds: float) -> float:
    """The length (s) of a loop asked to last ``seconds``: whole latent frames, rounded up (the
    period is the latent's)."""
    return latent_frames(gen, seconds) * gen.mel.hop_length / gen.mel.sample_rate


@dataclass(frozen=True)
class Seam:
    """How a clip joins its own start: the spectral flux (mean |Δ log-mel| between neighbouring
    frames over a 60 dB range, the largest over the frames whose window spans the join) across
    the wrap point, and the median and 95th percentile of the same statistic at every position
    inside the clip."""

    flux: float
    median: float
    p95: float

    @property
    def ratio(self) -> float:
        """Flux across the wrap point over the clip's median (1: as smooth as the clip itself)."""
        return self.flux / max(self.median, 1e-9)

    @property
    def within_variation(self) -> bool:
        """True when the join changes no more than the clip's own 95th percentile."""
        return self.flux <= self.p95


def loop_seam(wave: torch.Tensor, mel: MelPreset) -> Seam:
    """The :class:`Seam` of ``wave (T,)`` played in a loop (its end followed by its start)."""
    hop, n_fft = mel.hop_length, mel.n_fft
    n = wave.numel()
    if n < 4 * n_fft:
        raise MaaError(f"a seam needs at least {4 * n_fft} samples, got {n}")
    looped = torch.cat([wave.float().cpu(), wave.float().cpu()[: 2 * n_fft]])
    logmel = MelSpectrogram(mel)(looped)[0]
    # bins more than 60 dB below the loudest cell flicker with rounding noise; they are inaudible
    logmel = logmel.clamp_min(float(logmel.max()) - SEAM_RANGE[mel.log])
    flux = (logmel[:, 1:] - logmel[:, :-1]).abs().mean(dim=0)  # flux[j]: frames j → j + 1
    # frame f covers samples [f·hop − pad, f·hop − pad + n_fft): the frames straddling the join
    pad = (n_fft - hop) // 2
    first = (n - n_fft + pad) // hop + 1
    last = (n + pad - 1) // hop
    span = last - first + 2  # flux values touching a straddling frame
    windows = flux.unfold(0, span, 1).amax(dim=-1)  # windows[j] = max(flux[j : j + span])
    seam = float(windows[first - 1])
    inside = windows[: max(1, first - span)]
    return Seam(seam, float(inside.median()), float(torch.quantile(inside, 0.95)))


class Panel(NamedTuple):
    """One row of an edit picture: a title and a log-mel ``(n_mels, F)`` or a 0/1 mask."""

    title: str
    image: torch.Tensor
    is_mask: bool = False


def save_edit_png(path: str | os.PathLike[str], panels: list[Panel], mel: MelPreset) -> Path:
    """Input, mask and output spectrograms one above the other on one time axis (log-mels on one
    colour scale), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [p.image.shape[-1] * mel.hop_length / mel.sample_rate for p in panels]
    mels = [p.image for p in panels if not p.is_mask]
    lo, hi = min(float(m.min()) for m in mels), max(float(m.max()) for m in mels)
    width = max(6.0, min(16.0, 1.2 * max(seconds) + 2))
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 2.4 * len(panels)), dpi=100,
                             squeeze=False)  # fmt: skip
    for ax, panel, secs in zip(axes[:, 0], panels, seconds, strict=True):
        style = {"vmin": 0, "vmax": 1, "cmap": "gray"} if panel.is_mask else {
            "vmin": lo, "vmax": hi, "cmap": "magma"}  # fmt: skip
        ax.imshow(panel.image.float().cpu().numpy(), origin="lower", aspect="auto",
                  extent=(0, secs, 0, mel.n_mels), interpolation="nearest", **style)  # fmt: skip
        ax.set(title=panel.title, ylabel="mel bin", xlim=(0, max(seconds)))
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
