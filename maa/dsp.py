"""Small signal-processing pieces: mel filterbank, resampling, biquads, loudness, Griffin-Lim.

Each is the textbook computation written over torch/scipy; the tests compare them with
reference values (the Slaney filterbank with librosa's and the previously used one, the resampler
with the analytic signal, loudness with ITU-R BS.1770's calibration tone).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from maa.errors import MaaError

__all__ = ["MaaError", "griffin_lim", "loudness", "lowpass", "mel_filterbank", "resample"]

# --- mel scale (Slaney: linear below 1 kHz, logarithmic above) -------------------------------

_F_SP = 200.0 / 3  # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel of frequencies in Hz."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * _F_SP
    log_part = _MIN_LOG_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, log_part, hz)


@lru_cache(maxsize=16)
def _mel_filterbank(
    n_freqs: int, sample_rate: int, n_mels: int, f_min: float, f_max: float
) -> np.ndarray:
    freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges)
    dist = edges[None, :] - freqs[:, None]  # (n_freqs, n_mels + 2)
    rising = -dist[:, :-2] / widths[:-1]
    falling = dist[:, 2:] / widths[1:]
    fb = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney area normalisation: each triangle integrates to 1 over Hz
    return fb * (2.0 / (edges[2:] - edges[:-2]))[None, :]


def mel_filterbank(
    n_freqs: int, sample_rate: int, n_mels: int, f_min: float, f_max: float
) -> torch.Tensor:
    """Triangular Slaney-scale, Slaney-normalised mel filters ``(n_freqs, n_mels)`` float32.

    ``n_freqs`` STFT bins spread evenly over 0…sample_rate/2 Hz; the same matrix as librosa's
    default ``filters.mel`` (transposed), as the toolkit's mel front end always used.
    """
    if not 0.0 <= f_min < f_max <= sample_rate / 2:
        raise MaaError(
            f"mel filterbank: need 0 ≤ f_min < f_max ≤ {sample_rate / 2:g} Hz, "
            f"got {f_min:g}–{f_max:g} Hz"
        )
    fb = _mel_filterbank(int(n_freqs), int(sample_rate), int(n_mels), float(f_min), float(f_max))
    return torch.from_numpy(fb.astype(np.float32))


# --- resampling ------------------------------------------------------------------------------


def resample(wave: torch.Tensor, orig_sr: int, new_sr: int) -> torch.Tensor:
    """Resample ``(..., T)`` from ``orig_sr`` to ``new_sr`` Hz; ``ceil(T·new/orig)`` samples.

    Polyphase FIR filtering (``scipy.signal.resample_poly``, Kaiser-windowed sinc, β = 5) over
    the reduced ratio; runs on the CPU in float64 and returns the input's dtype and device.
    """
    orig_sr, new_sr = int(orig_sr), int(new_sr)
    if orig_sr <= 0 or new_sr <= 0:
        raise MaaError(f"resample: sample rates must be positive, got {orig_sr} → {new_sr} Hz")
    if orig_sr == new_sr:
        return wave
    g = math.gcd(orig_sr, new_sr)
    x = wave.detach().cpu().double().numpy()
    from scipy import signal  # imported here: scipy.signal costs seconds at start-up

    y = signal.resample_poly(x, new_sr // g, orig_sr // g, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(y)).to(dtype=wave.dtype, device=wave.device)


# --- biquads and loudness (ITU-R BS.1770-4) --------------------------------------------------


def _biquad(b: list[float], a: list[float], x: np.ndarray) -> np.ndarray:
    from scipy import signal

    return signal.lfilter(np.array(b) / a[0], np.array(a) / a[0], x, axis=-1)


def lowpass(wave: torch.Tensor, sample_rate: int, cutoff: float, q: float = 0.7071) -> torch.Tensor:
    """Second-order (RBJ cookbook) low-pass of ``(..., T)`` at ``cutoff`` Hz."""
    w0 = 2 * math.pi * cutoff / sample_rate
    alpha = math.sin(w0) / (2 * q)
    c = math.cos(w0)
    b = [(1 - c) / 2, 1 - c, (1 - c) / 2]
    a = [1 + alpha, -2 * c, 1 - alpha]
    y = _biquad(b, a, wave.detach().cpu().double().numpy())
    return torch.from_numpy(y).to(dtype=wave.dtype, device=wave.device)


def _k_weighting(sample_rate: int) -> list[tuple[list[float], list[float]]]:
    """BS.1770's two K-weighting stages (high-shelf +4 dB at 1.5 kHz, high-pass at 38 Hz) as
    RBJ biquads designed for ``sample_rate``."""
    w0 = 2 * math.pi * 1500.0 / sample_rate
    gain = 10 ** (4.0 / 40)  # shelf amplitude, sqrt of the 4 dB power gain
    alpha = math.sin(w0) / 2 * math.sqrt(2.0)  # shelf slope 1 ↔ Q = 1/√2
    c, s = math.cos(w0), 2 * math.sqrt(gain) * alpha
    shelf = (
        [
            gain * ((gain + 1) + (gain - 1) * c + s),
            -2 * gain * ((gain - 1) + (gain + 1) * c),
            gain * ((gain + 1) + (gain - 1) * c - s),
        ],
        [
            (gain + 1) - (gain - 1) * c + s,
            2 * ((gain - 1) - (gain + 1) * c),
            (gain + 1) - (gain - 1) * c - s,
        ],
    )
    w0 = 2 * math.pi * 38.0 / sample_rate
    alpha, c = math.sin(w0) / (2 * 0.5), math.cos(w0)
    highpass = ([(1 + c) / 2, -(1 + c), (1 + c) / 2], [1 + alpha, -2 * c, 1 - alpha])
    return [shelf, highpass]


def loudness(wave: torch.Tensor, sample_rate: int) -> float:
    """Integrated loudness of a mono ``(T,)`` clip in LUFS (ITU-R BS.1770-4).

    K-weighting, mean square over 400 ms blocks with 75 % overlap, an absolute gate at
    −70 LUFS and a relative gate 10 LU below the absolutely gated level. ``-inf`` for silence
    or clips shorter than one block.
    """
    x = wave.detach().cpu().double().reshape(-1).numpy()
    for b, a in _k_weighting(int(sample_rate)):
        x = _biquad(b, a, x)
    block, step = round(0.4 * sample_rate), round(0.1 * sample_rate)
    if x.size < block:
        return float("-inf")
    starts = np.arange(0, x.size - block + 1, step)
    power = np.array([np.mean(x[s : s + block] ** 2) for s in starts])
    with np.errstate(divide="ignore"):
        lufs = -0.691 + 10 * np.log10(power)
    gated = power[lufs > -70.0]
    if gated.size == 0:
        return float("-inf")
    threshold = -0.691 + 10 * np.log10(gated.mean()) - 10.0
    gated = power[(lufs > -70.0) & (lufs > threshold)]
    return float(-0.691 + 10 * np.log10(gated.mean()))


# --- Griffin-Lim -----------------------------------------------------------------------------


def griffin_lim(
    magnitude: torch.Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int,
    n_iter: int = 32,
    momentum: float = 0.99,
) -> torch.Tensor:
    """Phase recovery for a linear magnitude ``(B, n_fft/2+1, frames)`` → waveform ``(B, T)``.

    The fast Griffin-Lim iteration (Perraudin et al. 2013): alternate projections between
    consistent STFTs and the given magnitude, with ``momentum`` on the rebuilt spectrum, from
    zero phase. Frames are centred on ``t·hop`` (``center=True``).
    """
    window = torch.hann_window(win_length, device=magnitude.device, dtype=magnitude.dtype)
    length = (magnitude.shape[-1] - 1) * hop_length

    def istft(spec: torch.Tensor) -> torch.Tensor:
        return torch.istft(spec, n_fft, hop_length, win_length, window, length=length)

    def stft(wave: torch.Tensor) -> torch.Tensor:
        return torch.stft(
            wave, n_fft, hop_length, win_length, window, pad_mode="reflect", return_complex=True
        )

    angles = torch.ones_like(magnitude, dtype=torch.complex64)
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = stft(istft(magnitude * angles))
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return istft(magnitude * angles)


def spectral_convergence(magnitude: torch.Tensor, wave: torch.Tensor, n_fft: int, hop: int,
                         win_length: int) -> float:  # fmt: skip
    """``‖S − |STFT(x)|‖_F / ‖S‖_F`` for a target magnitude ``S`` and a waveform ``x``."""
    window = torch.hann_window(win_length, dtype=wave.dtype)
    spec = torch.stft(wave, n_fft, hop, win_length, window, return_complex=True).abs()
    frames = min(spec.shape[-1], magnitude.shape[-1])
    diff = magnitude[..., :frames] - spec[..., :frames]
    return float(diff.norm() / magnitude[..., :frames].norm().clamp_min(1e-12))
