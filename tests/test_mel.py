"""Mel presets against an independent numpy computation (Slaney formula, explicit STFT)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maa.errors import MaaError
from maa.mel import MEL_PRESETS, MelSpectrogram, get_mel_preset, pad_frames
from maa.testing import tone


def slaney_hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's auditory toolbox scale: linear below 1 kHz, log above (librosa's formula)."""
    f = np.asarray(f, dtype=np.float64)
    lin = f / (200.0 / 3)
    logstep = math.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / logstep, lin)


def slaney_mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    logstep = math.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * 200.0 / 3)


def reference_mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular Slaney-normalised filters (n_mels, n_fft/2+1), written from the formula."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = slaney_mel_to_hz(
        np.linspace(slaney_hz_to_mel(fmin), slaney_hz_to_mel(fmax), n_mels + 2)
    )
    basis = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        basis[i] = np.maximum(0, np.minimum(up, down)) * 2.0 / (hi - lo)
    return basis


def reference_logmel(wave: np.ndarray, preset) -> np.ndarray:
    p = preset
    pad = (p.n_fft - p.hop_length) // 2
    x = np.pad(np.clip(wave, -1, 1), (pad, pad), mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(p.win_length) / p.win_length)  # periodic
    frames = len(wave) // p.hop_length
    spec = np.stack(
        [
            np.fft.rfft(x[i * p.hop_length : i * p.hop_length + p.n_fft] * window)
            for i in range(frames)
        ],
        axis=1,
    )
    mag = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    mel = reference_mel_basis(p.sample_rate, p.n_fft, p.n_mels, p.f_min, p.f_max) @ mag
    mel = np.maximum(mel, 1e-5)
    return np.log10(mel) if p.log == "log10" else np.log(mel)


@pytest.mark.parametrize("name", sorted(MEL_PRESETS))
def test_mel_matches_independent_computation(name):
    preset = get_mel_preset(name)
    g = torch.Generator().manual_seed(0)
    wave = 0.3 * torch.randn(preset.sample_rate // 2, generator=g)
    ours = MelSpectrogram(preset)(wave)[0].double().numpy()
    ref = reference_logmel(wave.double().numpy(), preset)
    assert ours.shape == ref.shape == (preset.n_mels, len(wave) // preset.hop_length)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


@pytest.mark.parametrize("name", sorted(MEL_PRESETS))
def test_sine_peaks_in_the_right_bin(name):
    preset = get_mel_preset(name)
    lo, hi = slaney_hz_to_mel(preset.f_min), slaney_hz_to_mel(preset.f_max)
    centres = slaney_mel_to_hz(np.linspace(lo, hi, preset.n_mels + 2))[1:-1]  # filter centres
    for expected in (12, 37, 60):
        mel = MelSpectrogram(preset)(tone(float(centres[expected]), 1.0, preset.sample_rate))[0]
        assert int(mel.mean(dim=-1).argmax()) == expected


def test_frames_floor_and_log_base():
    paper, default = get_mel_preset("paper"), get_mel_preset("default")
    silence = torch.zeros(16000)
    assert MelSpectrogram(paper)(silence).shape == (1, 80, 62)
    # silence sits at the floor of each preset's log base
    assert paper.floor == pytest.approx(-5.0)
    assert default.floor == pytest.approx(math.log(1e-5))
    assert MelSpectrogram(default)(torch.zeros(22050)).max() < default.floor + 0.1
    assert default.frames_for_seconds(5.0) % 8 == 0
    assert paper.clip_frames == 624


def test_batched_equals_single():
    preset = get_mel_preset("default")
    m = MelSpectrogram(preset)
    waves = torch.randn(3, 22050) * 0.1
    batched = m(waves)
    for i in range(3):
        torch.testing.assert_close(batched[i], m(waves[i])[0])


def test_pad_frames_and_errors():
    mel = torch.zeros(1, 80, 13)
    padded = pad_frames(mel, 8, -11.0)
    assert padded.shape[-1] == 16 and padded[..., 13:].eq(-11.0).all()
    with pytest.raises(MaaError, match="unknown mel preset 'nope'"):
        get_mel_preset("nope")
    with pytest.raises(MaaError, match="shorter than one mel hop"):
        MelSpectrogram(get_mel_preset("default"))(torch.zeros(100))
