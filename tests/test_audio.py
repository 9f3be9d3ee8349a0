"""Audio loading, resampling, length helpers and their errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from maa.audio import (
    audio_info,
    fix_length,
    load_audio,
    peak_normalize,
    random_crop,
    write_audio,
)
from maa.errors import AudioError, MaaError
from maa.testing import tone


@pytest.mark.parametrize("ext", [".wav", ".flac", ".ogg"])
def test_write_then_load_round_trip(tmp_path, ext):
    wave = tone(440, 0.5, 22050)
    path = write_audio(tmp_path / f"a{ext}", wave, 22050)
    back, sr = load_audio(path)
    assert sr == 22050 and back.shape == wave.shape
    tol = 1e-3 if ext != ".ogg" else 0.1  # vorbis is lossy
    assert (back - wave).abs().mean() < tol
    info = audio_info(path)
    assert info.sample_rate == 22050 and info.duration == pytest.approx(0.5, abs=1e-3)


def test_stereo_is_downmixed_and_resampled(tmp_path):
    left = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32) * 0.5
    sf.write(tmp_path / "s.wav", np.stack([left, -left * 0 + left], axis=1), 16000)
    wave, sr = load_audio(tmp_path / "s.wav", sample_rate=22050)
    assert sr == 22050 and wave.dim() == 1
    assert abs(wave.numel() - 22050) <= 1
    assert wave.abs().max() == pytest.approx(0.5, abs=0.02)


def test_fix_length_modes():
    wave = torch.arange(5, dtype=torch.float32)
    assert fix_length(wave, 3, offset=1).tolist() == [1, 2, 3]
    assert fix_length(wave, 7).tolist() == [0, 1, 2, 3, 4, 0, 0]
    assert fix_length(wave, 12, mode="tile").tolist() == [0, 1, 2, 3, 4] * 2 + [0, 1]
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    long = torch.randn(1000)
    torch.testing.assert_close(random_crop(long, 100, g1), random_crop(long, 100, g2))
    with pytest.raises(MaaError, match="unknown mode"):
        fix_length(wave, 7, mode="mirror")


def test_peak_normalize_leaves_silence_alone():
    assert peak_normalize(torch.zeros(10)).eq(0).all()
    out = peak_normalize(torch.tensor([0.1, -0.2]), peak_db=0.0)
    assert out.abs().max() == pytest.approx(1.0)


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "text.wav").write_text("not audio at all")
    with pytest.raises(AudioError, match="not a readable audio file"):
        load_audio(tmp_path / "text.wav")
    sf.write(tmp_path / "zero.wav", np.zeros((0,), dtype=np.float32), 16000)
    with pytest.raises(AudioError, match=r"no audio frames|empty"):
        load_audio(tmp_path / "zero.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(1600, dtype=np.float32), 16000)
    load_audio(tmp_path / "silent.wav")  # silence is valid audio by default
    with pytest.raises(AudioError, match="silent"):
        load_audio(tmp_path / "silent.wav", allow_silent=False)
    sf.write(tmp_path / "nan.wav", np.full(1600, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match="NaN"):
        write_audio(tmp_path / "out.wav", torch.tensor([float("nan")] * 10), 16000)
    with pytest.raises(MaaError, match="unsupported output format"):
        write_audio(tmp_path / "out.mp4", torch.zeros(10), 16000)
    with pytest.raises(MaaError, match="does not exist"):
        write_audio(tmp_path / "no" / "out.wav", torch.zeros(10), 16000)
