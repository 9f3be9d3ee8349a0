"""Audio I/O and fixed-length helpers.

Waveforms are float32 tensors in [-1, 1]: ``(T,)`` for one mono clip, ``(B, T)`` for a batch.
Files are read with soundfile (wav/flac/ogg, mp3 where libsndfile supports it), down-mixed to
mono and resampled by :func:`maa.dsp.resample` (polyphase FIR).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from maa import dsp
from maa.errors import AudioError, MaaError
from maa.fsutil import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".opus")
SILENCE_PEAK = 1e-4  # a clip whose peak is below this (-80 dBFS) counts as silent


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: duration in seconds, sample rate in Hz, channel count."""

    duration: float
    sample_rate: int
    channels: int
    frames: int


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Read a file's header without decoding it. Raises :class:`AudioError` if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: the file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for non-audio or corrupt data
        raise AudioError(f"{path}: not a readable audio file ({_short(exc)})") from exc
    frames = int(info.frames)
    if frames <= 0:
        raise AudioError(f"{path}: the file holds no audio frames")
    return AudioInfo(frames / info.samplerate, int(info.samplerate), int(info.channels), frames)


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int | None = None,
    *,
    allow_silent: bool = True,
) -> tuple[torch.Tensor, int]:
    """Load a file as a mono float32 waveform ``(T,)``.

    Args:
        path: audio file.
        sample_rate: resample to this rate (Hz); ``None`` keeps the file's rate.
        allow_silent: if False, a clip whose peak is below -80 dBFS raises :class:`AudioError`.

    Returns:
        ``(wave, sr)`` with ``wave`` of shape ``(T,)`` in [-1, 1].
    """
    path = Path(path)
    audio_info(path)  # clear errors for missing, empty and non-audio files
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: could not decode audio ({_short(exc)})") from exc
    wave = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))
    check_wave(wave, str(path), allow_silent=allow_silent)
    if sample_rate is not None and sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
        sr = sample_rate
    return wave.clamp_(-1.0, 1.0), int(sr)


def check_wave(wave: torch.Tensor, name: str, *, allow_silent: bool = True) -> None:
    """Raise :class:`AudioError` for an empty, NaN/inf or (optionally) silent waveform."""
    if wave.numel() == 0:
        raise AudioError(f"{name}: the audio is empty (0 samples)")
    if not torch.isfinite(wave).all():
        raise AudioError(f"{name}: the audio contains NaN or infinite samples")
    if not allow_silent and wave.abs().max().item() < SILENCE_PEAK:
        raise AudioError(f"{name}: the audio is silent (peak below -80 dBFS)")


def require_length(wave: torch.Tensor, sr: int, min_samples: int, name: str) -> None:
    """Raise :class:`AudioError` naming ``name`` and the minimum when ``wave`` is too short."""
    if wave.shape[-1] < min_samples:
        raise AudioError(
            f"{name}: {wave.shape[-1] / sr:.3f} s is shorter than one latent frame "
            f"({min_samples} samples = {min_samples / sr:.3f} s at {sr} Hz); pass a longer clip"
        )


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``(..., T)`` from ``orig_sr`` to ``new_sr`` Hz (:func:`maa.dsp.resample`)."""
    return dsp.resample(wave, orig_sr, new_sr)


def fix_length(wave: torch.Tensor, length: int, mode: str = "pad", offset: int = 0) -> torch.Tensor:
    """Return exactly ``length`` samples (last axis) of ``wave``.

    Longer input is cropped starting at ``offset``. Shorter input is zero-padded at the end
    (``mode="pad"``) or repeated (``mode="tile"``), the usual choice for short sound effects.
    """
    if length <= 0:
        raise MaaError(f"fix_length: length must be positive, got {length}")
    n = wave.shape[-1]
    if n >= length:
        offset = max(0, min(offset, n - length))
        return wave[..., offset : offset + length]
    if mode == "pad":
        return torch.nn.functional.pad(wave, (0, length - n))
    if mode == "tile":
        reps = -(-length // n)
        return wave.repeat(*([1] * (wave.dim() - 1)), reps)[..., :length]
    raise MaaError(f"fix_length: unknown mode {mode!r}; expected 'pad' or 'tile'")


def random_crop(
    wave: torch.Tensor, length: int, generator: torch.Generator | None = None, mode: str = "pad"
) -> torch.Tensor:
    """Crop a random window of ``length`` samples (pad/tile if the clip is shorter)."""
    n = wave.shape[-1]
    offset = 0
    if n > length:
        offset = int(torch.randint(0, n - length + 1, (1,), generator=generator).item())
    return fix_length(wave, length, mode=mode, offset=offset)


def peak_normalize(wave: torch.Tensor, peak_db: float = -1.0) -> torch.Tensor:
    """Scale so the absolute peak is ``peak_db`` dBFS; silent input is returned unchanged."""
    peak = wave.abs().amax(dim=-1, keepdim=True)
    target = 10.0 ** (peak_db / 20.0)
    scale = torch.where(peak > SILENCE_PEAK, target / peak.clamp_min(SILENCE_PEAK), 1.0)
    return wave * scale


def write_audio(
    path: str | os.PathLike[str], wave: torch.Tensor, sample_rate: int, subtype: str = "PCM_16"
) -> Path:
    """Write a mono ``(T,)`` (or ``(1, T)``) waveform atomically; the format follows the suffix.

    Samples are clipped to [-1, 1] so integer formats never wrap around.
    """
    path = Path(path)
    wave = wave.detach().float().cpu().reshape(-1)
    check_wave(wave, str(path))
    data = wave.clamp(-1.0, 1.0).numpy()
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
    if fmt is None:
        raise MaaError(f"{path}: unsupported output format; use .wav, .flac or .ogg")
    if fmt == "OGG":
        subtype = "VORBIS"
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, int(sample_rate), format=fmt, subtype=subtype)
    return path


def find_audio_files(root: str | os.PathLike[str]) -> list[Path]:
    """All audio files under ``root`` (recursively, sorted, by extension)."""
    root = Path(root)
    if not root.is_dir():
        raise MaaError(f"{root}: not a folder; pass a folder that contains audio files")
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
