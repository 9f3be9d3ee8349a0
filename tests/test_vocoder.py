"""Vocoders: weight conversion parity, pitch fidelity, shapes, chunking and clear errors."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from maa.audio import load_audio, write_audio
from maa.bundle import Bundle
from maa.errors import AudioError, MaaError
from maa.mel import MelSpectrogram, get_mel_preset
from maa.models.hifigan import (
    UNIVERSAL_REF,
    HiFiGANConfig,
    build_generator,
    get_hifigan_config,
    load_universal,
    universal_checkpoint,
)
from maa.testing import tone
from maa.vocoder import HiFiGANVocoder, check_logmel, load_vocoder, resolve_vocoder_for

DEFAULT = get_mel_preset("default")
PAPER = get_mel_preset("paper")


def f0_of(wave: torch.Tensor, sr: int) -> float:
    """Frequency (Hz) of the strongest spectral peak between 50 Hz and 2 kHz."""
    x = wave.double().numpy()
    x = x * np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x, n=8 * len(x)))
    freqs = np.fft.rfftfreq(8 * len(x), 1 / sr)
    band = (freqs > 50) & (freqs < 2000)
    return float(freqs[band][np.argmax(spec[band])])


@pytest.fixture(scope="module")
def universal() -> HiFiGANVocoder:
    return load_vocoder("default", DEFAULT)


def test_universal_matches_original_generator(universal):
    root = universal_checkpoint().parent.parent
    spec = importlib.util.spec_from_file_location("hifigan_original", root / "models.py")
    original = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(original)  # the package __init__ needs librosa; models.py does not

    class Hparams(dict):
        __getattr__ = dict.__getitem__

    h = Hparams(json.loads((root / "data" / "config.json").read_text()))
    reference = original.Generator(h)
    ckpt = torch.load(universal_checkpoint(), map_location="cpu", weights_only=True)
    reference.load_state_dict(ckpt["generator"])  # weight-normed, as the original runs it
    reference.eval()
    logmel = MelSpectrogram(DEFAULT)(tone(330.0, 0.3, DEFAULT.sample_rate, harmonics=3))
    with torch.no_grad():
        expected = reference(logmel).squeeze(1)
    got = universal(logmel)
    assert got.shape == expected.shape == (1, logmel.shape[-1] * 256)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_cli_vocode_keeps_fundamental(tmp_path, universal):
    from maa.cli.app import app

    sr = DEFAULT.sample_rate
    src = write_audio(tmp_path / "tone.wav", tone(220.0, 0.6, sr, harmonics=4), sr)
    out = tmp_path / "out.wav"
    res = CliRunner().invoke(app, ["vocode", str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "log-mel L1" in " ".join(res.output.split())
    wave, got_sr = load_audio(out)
    assert got_sr == sr and wave.numel() == (int(0.6 * sr) // 256) * 256
    assert abs(f0_of(wave[1000:-1000], sr) - 220.0) / 220.0 < 0.02


def test_chunked_vocoding_equals_one_pass(universal):
    logmel = MelSpectrogram(DEFAULT)(tone(440.0, 1.0, DEFAULT.sample_rate, harmonics=2))
    whole = universal(logmel)
    chunked = HiFiGANVocoder(
        universal.generator, DEFAULT, "chunked", "test", torch.device("cpu"), chunk_frames=32
    )
    assert logmel.shape[-1] > 32 + 2 * chunked.context_frames  # really split in 3
    torch.testing.assert_close(chunked(logmel), whole, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("mel_name", ["default", "paper"])
def test_generator_shape_contract(mel_name):
    cfg = get_hifigan_config("tiny", mel_name)
    mel = cfg.mel_preset
    gen = build_generator(cfg)
    voc = HiFiGANVocoder(gen, mel, "tiny", "tiny", torch.device("cpu"))
    floor = torch.full((2, 80, 7), mel.floor)
    wave = voc(floor + torch.rand(2, 80, 7))
    assert wave.shape == (2, 7 * 256)
    assert voc.sample_rate == mel.sample_rate
    assert voc(floor[0]).shape == (7 * 256,)  # unbatched in, unbatched out


def test_upsampling_must_match_hop():
    with pytest.raises(MaaError, match=r"multiply to 128.*hop 256"):
        HiFiGANConfig(upsample_rates=(8, 8, 2), upsample_kernel_sizes=(16, 16, 4)).validate()


def test_bad_logmels_give_clear_errors():
    good = MelSpectrogram(DEFAULT)(tone(300.0, 0.2, DEFAULT.sample_rate))
    with pytest.raises(MaaError, match=r"64 mel bins.*expects 80"):
        check_logmel(torch.zeros(1, 64, 10), DEFAULT)
    with pytest.raises(MaaError, match="transpose"):
        check_logmel(good.transpose(1, 2), DEFAULT)
    bad = good.clone()
    bad[0, 3, 2] = float("nan")
    with pytest.raises(MaaError, match="NaN"):
        check_logmel(bad, DEFAULT)
    log10_mel = MelSpectrogram(PAPER)(tone(300.0, 0.2, PAPER.sample_rate))
    with pytest.raises(MaaError, match="log10"):
        check_logmel(log10_mel, DEFAULT)  # a log10 mel given to an ln vocoder
    with pytest.raises(MaaError, match="natural-log"):
        check_logmel(good, PAPER)  # an ln mel given to a log10 vocoder
    with pytest.raises(MaaError, match="outside"):
        check_logmel(20 * good / math.log(10) * 10, DEFAULT)  # a dB mel
    with pytest.raises(MaaError, match="0 frames"):
        check_logmel(torch.zeros(1, 80, 0), DEFAULT)
    assert check_logmel(good, DEFAULT).shape == good.shape


def test_pretrained_vocoder_only_for_default_preset():
    with pytest.raises(MaaError, match=r"'default'.*'paper'.*griffin-lim"):
        load_vocoder("default", PAPER)
    with pytest.raises(MaaError, match="not 'default', 'griffin-lim'"):
        load_vocoder("/no/such/bundle", PAPER)


def test_griffin_lim_fallback_keeps_pitch():
    voc = load_vocoder("griffin-lim", PAPER)
    assert "lower quality" in voc.label and voc.warning
    logmel = MelSpectrogram(PAPER)(tone(250.0, 1.0, PAPER.sample_rate, harmonics=3))
    wave = voc(logmel)
    assert wave.shape == (1, logmel.shape[-1] * 256)
    # Griffin-Lim only recovers pitch to within the mel filter spacing (~38 Hz here)
    assert abs(f0_of(wave[0, 2000:-2000], PAPER.sample_rate) - 250.0) / 250.0 < 0.075


def test_resolve_vocoder_for_bundles(tmp_path):
    tiny = get_hifigan_config("tiny")
    vocoder_bundle = Bundle.create(tmp_path / "voc", DEFAULT)
    gen = build_generator(tiny)
    vocoder_bundle.save_module("vocoder", gen, "hifigan", tiny.to_dict(), extra={"step": 3})

    plain = Bundle.create(tmp_path / "plain", PAPER)
    fallback = resolve_vocoder_for(plain)
    assert fallback.kind == "griffin-lim" and "no vocoder" in fallback.warning

    model = Bundle.create(tmp_path / "model", DEFAULT)
    model.set_reference("vocoder", "hifigan", f"path:{tmp_path / 'voc'}")
    voc = resolve_vocoder_for(model)
    assert voc.kind == "hifigan" and "step 3" in voc.label
    logmel = torch.full((1, 80, 5), DEFAULT.floor)
    expected = gen.eval()(logmel.transpose(1, 2))
    torch.testing.assert_close(voc(logmel), expected)

    with pytest.raises(MaaError, match=r"'default' .*'paper'"):
        resolve_vocoder_for(plain, override=str(tmp_path / "voc"))
    plain.set_reference("vocoder", "hifigan", f"path:{tmp_path / 'voc'}")
    with pytest.raises(MaaError, match=r"trained for mel preset 'default'.*uses 'paper'"):
        resolve_vocoder_for(plain)

    shipped = Bundle.create(tmp_path / "shipped", DEFAULT)
    shipped.set_reference("vocoder", "hifigan", UNIVERSAL_REF)
    assert resolve_vocoder_for(shipped).name == "hifigan-universal"
    # a default-preset bundle with no vocoder component gets the pretrained HiFi-GAN
    assert (
        resolve_vocoder_for(Bundle.create(tmp_path / "bare", DEFAULT)).name == "hifigan-universal"
    )
    paper = Bundle.create(tmp_path / "paper", PAPER)
    paper.set_reference("vocoder", "hifigan", UNIVERSAL_REF)
    with pytest.raises(MaaError, match=r"universal HiFi-GAN.*'default'.*'paper'"):
        resolve_vocoder_for(paper)


def test_vocode_npy_and_empty_audio(tmp_path):
    from maa.stages.vocoder import vocode

    logmel = MelSpectrogram(PAPER)(tone(300.0, 0.5, PAPER.sample_rate))[0]
    np.save(tmp_path / "mel.npy", logmel.numpy())
    res = vocode(tmp_path / "mel.npy", tmp_path / "gl.wav", "griffin-lim", mel="paper")
    assert res["sample_rate"] == 16000 and res["frames"] == logmel.shape[-1]
    assert 0 < res["logmel_l1"] < 2.0
    np.save(tmp_path / "bad.npy", np.zeros((3, 64, 10), dtype=np.float32))
    with pytest.raises(MaaError, match=r"shape \(80, frames\)"):
        vocode(tmp_path / "bad.npy", tmp_path / "x.wav", "griffin-lim", mel="paper")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        vocode(tmp_path / "empty.wav", tmp_path / "x.wav", "griffin-lim")


def test_universal_conversion_needs_v1_shape():
    with pytest.raises(MaaError, match="V1 generator shape"):
        load_universal(get_hifigan_config("tiny"))


def test_universal_init_reads_log10_mels(universal):
    paper_gen = load_universal(get_hifigan_config("paper"))
    log10_mel = MelSpectrogram(PAPER)(tone(300.0, 0.1, PAPER.sample_rate)).transpose(1, 2)
    with torch.inference_mode():
        got = paper_gen(log10_mel)
        expected = universal.generator(log10_mel * math.log(10))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
