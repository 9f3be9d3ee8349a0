"""Our own DSP against reference values: filterbank, resampler, loudness, Griffin-Lim.

Tolerances and why:
* filterbank 1e-6 absolute: float32 storage of values ≤ 0.03 computed in float64 (≈ 1e-9
  rounding); the recorded reference values carry 7–8 significant digits.
* resampler 2e-3 (−48 dB under the sweep's 0.5 amplitude) inside the pass band: the Kaiser FIR's
  ripple, not float error; a coarse bound that still catches an off-by-one delay or a wrong rate.
* loudness 0.05 LU: BS.1770's calibration (0 dBFS 997 Hz sine → −3.01 LKFS) holds for its
  exact filters, ours are the RBJ-cookbook biquads designed per sample rate.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from maa import dsp

# (mel index, peak STFT bin, peak value, next bin's value, column sum) of
# the filterbank maa used before this module (its audio library's melscale_fbanks, v2.11, Slaney
# norm and scale) for 513 bins, 0–8000 Hz, 80 mels at 22050 Hz
RECORDED_PEAKS = [
    (0, 2, 0.022651389241218567, 0.007123667746782303, 0.04530278034508228),
    (7, 14, 0.02429264783859253, 0.008764916099607944, 0.04694403428584337),
    (23, 42, 0.01917111501097679, 0.0036433832719922066, 0.04530277312733233),
    (50, 117, 0.009395791217684746, 0.008926856331527233, 0.045954775472637266),
    (79, 358, 0.0032659703865647316, 0.0030243899673223495, 0.04641478764824569),
]


def test_mel_filterbank_equals_recorded_reference_values():
    fb = dsp.mel_filterbank(513, 22050, 80, 0.0, 8000.0).double()
    assert fb.shape == (513, 80) and fb.dtype == torch.float64
    for m, peak, value, after, total in RECORDED_PEAKS:
        assert int(fb[:, m].argmax()) == peak
        assert abs(fb[peak, m].item() - value) < 1e-6
        assert abs(fb[peak + 1, m].item() - after) < 1e-6
        assert abs(fb[:, m].sum().item() - total) < 1e-6
    assert abs(fb.sum().item() - 3.7136881789410836) < 1e-5


def test_mel_filterbank_equals_per_filter_slaney_formula():
    """Each filter rebuilt on its own: a triangle between mel-spaced edges, area 1 in Hz."""
    sr, n_freqs, n_mels, f_min, f_max = 16000, 257, 64, 50.0, 8000.0

    def mel(hz: float) -> float:
        return hz * 3 / 200 if hz < 1000 else 15 + 27 * math.log(hz / 1000) / math.log(6.4)

    def hz(m: float) -> float:
        return m * 200 / 3 if m < 15 else 1000 * math.exp((m - 15) * math.log(6.4) / 27)

    edges = [hz(m) for m in np.linspace(mel(f_min), mel(f_max), n_mels + 2)]
    freqs = np.linspace(0, sr / 2, n_freqs)
    ours = dsp.mel_filterbank(n_freqs, sr, n_mels, f_min, f_max).double().numpy()
    for k in range(n_mels):
        lo, c, hi = edges[k : k + 3]
        tri = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
        np.testing.assert_allclose(ours[:, k], tri * 2 / (hi - lo), atol=1e-6, rtol=0)


def test_mel_filterbank_rejects_band_above_nyquist():
    with pytest.raises(dsp.MaaError, match="f_max"):
        dsp.mel_filterbank(257, 16000, 64, 0.0, 9000.0)


@pytest.mark.parametrize(("orig", "new"), [(44100, 22050), (48000, 16000), (22050, 16000),
                                           (16000, 22050), (8000, 22050)])  # fmt: skip
def test_resample_sweep_matches_the_analytic_signal(orig: int, new: int):
    """A 50 Hz → 0.4·min(sr) linear sweep, resampled, equals the sweep evaluated at the new
    sample times (away from the first and last 20 ms, where the FIR sees the clip's edges)."""
    seconds, f0, f1 = 1.0, 50.0, 0.4 * min(orig, new)

    def sweep(sr: int) -> np.ndarray:
        t = np.arange(int(seconds * sr)) / sr
        return 0.5 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t**2))

    out = dsp.resample(torch.from_numpy(sweep(orig)).float(), orig, new)
    assert out.dtype == torch.float32 and out.shape == (math.ceil(seconds * orig * new / orig),)
    edge = int(0.02 * new)
    err = (out.double().numpy() - sweep(new))[edge:-edge]
    assert np.abs(err).max() < 2e-3, np.abs(err).max()


def test_resample_keeps_batch_shape_dtype_and_identity():
    x = torch.randn(2, 3, 4410, generator=torch.Generator().manual_seed(0)).double()
    y = dsp.resample(x, 44100, 16000)
    assert y.shape == (2, 3, 1600) and y.dtype == torch.float64
    assert dsp.resample(x, 16000, 16000) is x
    with pytest.raises(dsp.MaaError, match="positive"):
        dsp.resample(x, 0, 16000)


def test_loudness_calibration_tone_and_recorded_values():
    sr = 48000
    t = torch.arange(3 * sr, dtype=torch.float64) / sr
    tone = torch.sin(2 * math.pi * 997 * t)
    assert abs(dsp.loudness(tone, sr) - (-3.01)) < 0.05
    # halving the amplitude is −6.02 LU, whatever the filters
    assert abs(dsp.loudness(tone / 2, sr) - dsp.loudness(tone, sr) + 6.0206) < 1e-3
    # recorded from the loudness maa used before (v2.11 of its audio library) on signals that
    # stay inside [-1, 1] after K-weighting (it clamped its filter output, so full-scale tones
    # differ there: -3.28 LUFS against BS.1770's -3.01)
    noise = torch.randn(2 * 44100, generator=torch.Generator().manual_seed(0)) * 0.1
    assert abs(dsp.loudness(noise, 44100) - (-16.924518585205078)) < 1e-3
    t = torch.arange(3 * 16000) / 16000
    am = 0.25 * torch.sin(2 * math.pi * 440 * t) * (1 + 0.5 * torch.sin(2 * math.pi * 0.7 * t))
    assert abs(dsp.loudness(am, 16000) - (-15.316082954406738)) < 1e-3
    assert dsp.loudness(torch.zeros(sr), sr) == float("-inf")
    assert dsp.loudness(tone[:1000], sr) == float("-inf")


def test_griffin_lim_converges():
    """Spectral convergence of the recovered waveform falls with iterations and ends low."""
    sr, n_fft, hop = 16000, 512, 128
    t = torch.arange(sr) / sr
    wave = 0.4 * torch.sin(2 * math.pi * (300 * t + 400 * t**2)) + 0.2 * torch.sin(
        2 * math.pi * 1250 * t
    )
    window = torch.hann_window(n_fft)
    mag = torch.stft(wave, n_fft, hop, n_fft, window, return_complex=True).abs()[None]
    waves = [dsp.griffin_lim(mag, n_fft, hop, n_fft, n)[0] for n in (1, 8, 64)]
    sc = [dsp.spectral_convergence(mag, w, n_fft, hop, n_fft) for w in waves]
    assert sc[0] > sc[1] > sc[2]
    assert sc[2] < 0.12, sc


def test_lowpass_attenuates_above_cutoff():
    sr = 16000
    t = torch.arange(sr) / sr
    low, high = torch.sin(2 * math.pi * 100 * t), torch.sin(2 * math.pi * 4000 * t)
    y_low, y_high = dsp.lowpass(low, sr, 400.0), dsp.lowpass(high, sr, 400.0)
    assert y_low[4000:].abs().max() > 0.95  # 100 Hz passes (≈ −0.03 dB)
    assert y_high[4000:].abs().max() < 0.015  # 4 kHz: −40 dB for a 2nd-order filter at 10×
