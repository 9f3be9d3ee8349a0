"""Log-mel spectrograms as in HiFi-GAN and the official Make-An-Audio release.

STFT: waveform clamped to [-1, 1], reflect-padded by ``(n_fft - hop) / 2`` on both sides,
``center=False``, Hann window, magnitude ``sqrt(re² + im² + 1e-9)``, Slaney mel basis, then
``log10`` (``paper``) or natural log (``default``, ``audioldm``) of ``clamp(x, 1e-5)``.
A clip of ``T`` samples gives ``T // hop`` frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from maa.config import Config
from maa.dsp import mel_filterbank
from maa.errors import MaaError, choose

LOG_FLOOR = 1e-5


@dataclass(frozen=True)
class MelPreset(Config):
    """One mel-spectrogram front end. Frequencies in Hz, lengths in samples or frames."""

    name: str
    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int
    f_min: float
    f_max: float
    log: str  # "log10" or "ln"
    clip_frames: int | None  # fixed training length in frames (None: any length)
    frame_multiple: int = 8  # latent downsampling: frames are padded to a multiple of this

    @property
    def floor(self) -> float:
        """Log-mel value of silence (the log of the 1e-5 clamp)."""
        return math.log10(LOG_FLOOR) if self.log == "log10" else math.log(LOG_FLOOR)

    @property
    def latent_frame_samples(self) -> int:
        """Samples in one latent frame (``frame_multiple`` mel frames): the shortest clip the
        VAE and the vocoder commands accept."""
        return self.frame_multiple * self.hop_length

    def frames_for(self, num_samples: int) -> int:
        """Number of mel frames for ``num_samples`` samples."""
        return num_samples // self.hop_length

    def samples_for(self, frames: int) -> int:
        """Number of samples a vocoder produces for ``frames`` frames."""
        return frames * self.hop_length

    def frames_for_seconds(self, seconds: float) -> int:
        """Frames for ``seconds`` of audio, rounded up to ``frame_multiple``."""
        frames = max(1, round(seconds * self.sample_rate / self.hop_length))
        return -(-frames // self.frame_multiple) * self.frame_multiple


MEL_PRESETS: dict[str, MelPreset] = {
    "paper": MelPreset("paper", 16000, 1024, 1024, 256, 80, 0.0, 8000.0, "log10", 624),
    "default": MelPreset("default", 22050, 1024, 1024, 256, 80, 0.0, 8000.0, "ln", None),
    # AudioLDM's front end (`maa import audioldm`): 64 mels at hop 160, frames padded to its VAE's
    # ×4 downsampling. AudioLDM centres frame t on sample t·hop; this STFT centres it half a hop
    # later (80 samples), which only matters when real audio is encoded or vocoded
    "audioldm": MelPreset("audioldm", 16000, 1024, 1024, 160, 64, 0.0, 8000.0, "ln", None, 4),
}


def get_mel_preset(name: str) -> MelPreset:
    """Look a mel preset up by name, with an error listing the known ones."""
    return choose(MEL_PRESETS, name, "mel preset", sorted(MEL_PRESETS))


class MelSpectrogram(nn.Module):
    """Waveform ``(B, T)`` or ``(T,)`` in [-1, 1] → log-mel ``(B, n_mels, T // hop)``.

    Buffers (window, mel basis) move with ``.to(device)``, so extraction runs batched on the
    GPU when the module is there.
    """

    def __init__(self, preset: MelPreset) -> None:
        super().__init__()
        self.preset = preset
        basis = mel_filterbank(
            preset.n_fft // 2 + 1, preset.sample_rate, preset.n_mels, preset.f_min, preset.f_max
        )  # (n_freqs, n_mels)
        self.register_buffer("mel_basis", basis.T.contiguous(), persistent=False)
        self.register_buffer("window", torch.hann_window(preset.win_length), persistent=False)

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude ``(B, n_fft/2+1, frames)``."""
        p = self.preset
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        if wave.shape[-1] < p.hop_length:
            raise MaaError(
                f"audio of {wave.shape[-1]} samples is shorter than one mel hop "
                f"({p.hop_length} samples at {p.sample_rate} Hz)"
            )
        pad = (p.n_fft - p.hop_length) // 2
        x = wave.float().clamp(-1.0, 1.0).unsqueeze(1)
        # reflect padding needs pad < length; pad short clips with zeros first
        if x.shape[-1] <= pad:
            x = nn.functional.pad(x, (0, pad + 1 - x.shape[-1]))
        x = nn.functional.pad(x, (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(
            x, p.n_fft, p.hop_length, p.win_length, self.window, center=False, return_complex=True
        )  # one-sided, unnormalised
        mag = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        frames = wave.shape[-1] // p.hop_length
        return mag[..., :frames]

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.mel_basis, self.magnitude(wave))
        return log_compress(mel, self.preset)


def log_compress(mel: torch.Tensor, preset: MelPreset) -> torch.Tensor:
    """Linear mel magnitude → log-mel with the preset's base and the 1e-5 floor."""
    mel = mel.clamp_min(LOG_FLOOR)
    return torch.log10(mel) if preset.log == "log10" else torch.log(mel)


def log_expand(logmel: torch.Tensor, preset: MelPreset) -> torch.Tensor:
    """Inverse of :func:`log_compress` (linear mel magnitude)."""
    return torch.pow(10.0, logmel) if preset.log == "log10" else torch.exp(logmel)


def pad_frames(mel: torch.Tensor, multiple: int, value: float) -> torch.Tensor:
    """Pad the last (time) axis of ``mel`` with ``value`` up to a multiple of ``multiple``."""
    frames = mel.shape[-1]
    target = -(-frames // multiple) * multiple
    if target == frames:
        return mel
    return nn.functional.pad(mel, (0, target - frames), value=value)
