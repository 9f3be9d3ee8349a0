"""Editing audio: SDEdit, zero-shot inpainting, continuation, long clips, loops, bandwidth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from maa.bundle import Bundle
from maa.cli.app import app
from maa.edit import LatentEdit, load_input, loop_seam, mel_of, restyle, sample_loop, unet_input
from maa.errors import MaaError
from maa.generate import Generator, SamplingSettings, loudness_normalize
from maa.inpaint import (
    CROSSFADE_S,
    check_band,
    check_spans,
    continue_audio,
    generate_long,
    inpaint,
    parse_range,
    paste_back,
    super_resolve,
    time_weights,
)
from maa.mel import get_mel_preset
from maa.stages.edit import continue_file, inpaint_file, super_resolve_file
from maa.stages.generate import generate
from maa.testing import noise, tiny_bundle, tone

SR = 22050
MEL = get_mel_preset("default")
FAST = {"steps": 3, "seed": 4}


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("edit") / "bundle")


@pytest.fixture(scope="module")
def gen(bundle_dir):
    return Generator.from_bundle(bundle_dir, device="cpu", dtype="fp32", vocoder="griffin-lim")


@pytest.fixture(scope="module")
def wave():
    """Two seconds of a harmonic tone over quiet noise, exact in PCM16 (as read from a file)."""
    w = tone(440, 2.0, SR, harmonics=3) + noise(2.0, SR, amp=0.05)
    return torch.round(w * 32768) / 32768


@pytest.fixture()
def wav_file(tmp_path, wave):
    path = tmp_path / "in.wav"
    sf.write(path, wave.numpy(), SR, subtype="PCM_16")
    return path


def _outside(n: int, spans: list[tuple[float, float]]) -> torch.Tensor:
    keep = torch.ones(n, dtype=torch.bool)
    for a, b in spans:
        keep[round(a * SR) : round(b * SR)] = False
    return keep


def test_inpainting_keeps_every_sample_outside_the_spans(gen, wave):
    spans = [(0.4, 0.9), (1.3, 1.6)]
    res = inpaint(gen, wave, "a dog barking", spans, SamplingSettings(**FAST))
    out = res.clip.wave
    keep = _outside(wave.numel(), spans)
    assert out.shape == wave.shape
    assert torch.equal(out[keep], wave[keep])  # the very samples
    inside = ~keep
    assert (out[inside] - wave[inside]).abs().mean() > 1e-3  # the spans were regenerated
    # the mask was mapped to the latent grid so that it covers each span entirely
    frames = res.mask.shape[-1]
    assert res.mask[:, round(0.4 * SR / 256) : round(0.9 * SR / 256)].eq(1).all()
    assert res.mask[:, : math.floor(0.4 * SR / 256)].eq(0).all() and frames >= wave.numel() // 256
    # mel frames whose window never reaches a span are identical: the L1 outside is small
    assert res.outside_l1() < 0.1


def test_band_inpainting_keeps_the_other_frequencies(gen, wave):
    span, band = (0.5, 1.5), (3000.0, 8000.0)
    res = inpaint(gen, wave, "birds", [span], SamplingSettings(**FAST), band=band)
    keep = _outside(wave.numel(), [span])
    assert torch.equal(res.clip.wave[keep], wave[keep])
    frames = slice(round(0.5 * SR / 256), round(1.5 * SR / 256))
    assert res.mask[:20].eq(0).all() and res.mask[70:, frames].eq(1).all()  # bins by centre
    # pasting back: inside the span the input's STFT is kept outside the band (the tone's
    # partials at 440, 880, 1320 Hz), the generated sound's inside it
    generated = noise(2.0, SR, amp=0.3, seed=9)
    out = paste_back(wave, generated, [(round(0.5 * SR), round(1.5 * SR))], MEL, band, 1102)
    spec = [torch.stft(w, 1024, 256, window=torch.hann_window(1024), return_complex=True)
            for w in (out, wave, generated)]  # fmt: skip
    inner = slice(round(0.6 * SR / 256), round(1.4 * SR / 256))
    low, high = slice(0, round(2800 * 1024 / SR)), slice(round(3200 * 1024 / SR), 362)

    def err(a, b, bins):
        return float((spec[a][bins, inner] - spec[b][bins, inner]).norm()
                     / spec[b][bins, inner].norm())  # fmt: skip

    assert err(0, 1, low) < 1e-4 and err(0, 2, high) < 1e-4
    assert torch.equal(out[keep], wave[keep])


def test_every_sampler_keeps_the_known_region(gen, wave):
    for sampler in ("ddim", "dpmpp-2m", "unipc", "euler", "euler-a", "heun", "pndm"):
        settings = SamplingSettings(steps=2, seed=1, sampler=sampler)
        res = inpaint(gen, wave[:SR], "rain", [(0.3, 0.6)], settings)
        keep = _outside(SR, [(0.3, 0.6)])
        assert torch.isfinite(res.clip.wave).all()
        assert torch.equal(res.clip.wave[keep], wave[:SR][keep]), sampler


def test_known_region_is_imposed_on_the_latents(gen, wave):
    """After the last step the latent outside the mask is exactly the input's."""
    from maa.edit import encode_wave, latent_grid
    from maa.inpaint import mel_mask

    frames = MEL.frames_for_seconds(1.0)
    known, _ = encode_wave(gen, wave[:SR], frames)
    mask = latent_grid(mel_mask([(0.3, 0.6)], None, frames, MEL), gen)
    edit = LatentEdit(gen.unet.config.in_channels, known=known, mask=mask)
    emb = gen.text_encoder.encode(["rain", ""])
    cond, uncond = (emb.__class__(emb.tokens[[i]], emb.mask[[i]], emb.pooled[[i]]) for i in (0, 1))
    noise_ = torch.randn(known.shape, generator=torch.Generator().manual_seed(0))
    x = gen.sample_latents(noise_, cond, uncond, 3.0, 4, "ddim", edit=edit)
    keep = mask.expand_as(x) == 0
    assert keep.any() and (~keep).any()
    assert torch.equal(x[keep], known[keep])
    assert not torch.allclose(x[~keep], known[~keep])


def test_strength_zero_returns_the_input_and_one_ignores_it(gen, wave):
    settings = SamplingSettings(**FAST)
    [before] = gen.generate("rain", duration=wave.numel() / SR, **FAST)
    [kept] = restyle(gen, ["rain"], settings, wave, strength=0.0)
    padded = torch.nn.functional.pad(wave, (0, -wave.numel() % 256))
    round_trip = gen.vocoder(mel_of(gen, padded))[: wave.numel()]
    assert torch.equal(kept.wave, loudness_normalize(round_trip, SR))  # mel → vocoder only
    other = noise(2.0, SR, seed=3)
    [a] = restyle(gen, ["rain"], settings, wave, strength=1.0)
    [b] = restyle(gen, ["rain"], settings, other, strength=1.0)
    [plain] = gen.generate("rain", duration=wave.numel() / SR, **FAST)
    assert torch.equal(a.wave, b.wave) and torch.equal(a.wave, plain.wave)
    [c] = restyle(gen, ["rain"], settings, wave, strength=0.6)
    assert c.wave.shape == wave.shape and not torch.equal(c.wave, a.wave)
    inpaint(gen, wave, "rain", [(0.5, 1.0)], SamplingSettings(sampler="euler", **FAST))
    sample_loop(gen, ["rain"], SamplingSettings(duration=1.0, **FAST))
    [after] = gen.generate("rain", duration=wave.numel() / SR, **FAST)
    assert torch.equal(before.wave, after.wave)  # edits leave no state in the shared schedulers


@pytest.mark.parametrize(("strength", "calls"), [(0.3, 3), (0.5, 5), (0.99, 9), (1.0, 10)])
def test_strength_sets_the_number_of_denoising_steps(gen, wave, monkeypatch, strength, calls):
    seen = []
    original = gen.predict_noise
    monkeypatch.setattr(gen, "predict_noise", lambda *a, **k: seen.append(1) or original(*a, **k))
    restyle(gen, ["rain"], SamplingSettings(steps=10, seed=0, sampler="ddim"), wave[:SR], strength)
    assert len(seen) == calls  # ⌊strength × steps⌋, as diffusers' img2img


def test_continuation_keeps_the_prefix_and_reaches_the_length(gen, wave):
    res = continue_audio(gen, wave, "rain", 1.7, SamplingSettings(**FAST))
    out, n, fade = res.clip.wave, wave.numel(), round(CROSSFADE_S * SR)
    assert out.numel() == n + round(1.7 * SR)
    assert torch.equal(out[: n - fade], wave[: n - fade])  # the last 50 ms fade into the model's
    assert (out[n:].abs() > 1e-3).float().mean() > 0.5  # the continuation is sound, not silence
    assert res.mask[:, : n // 256].eq(0).all() and res.mask[:, -1].eq(1).all()
    short = wave[: SR // 5]  # shorter than the known context of a window
    res = continue_audio(gen, short, "rain", 0.5, SamplingSettings(**FAST))
    assert res.clip.wave.numel() == short.numel() + round(0.5 * SR)


def test_long_clips_are_generated_window_by_window(gen, bundle_dir, tmp_path, monkeypatch):
    windows = []
    original = gen.sample
    monkeypatch.setattr(gen, "sample", lambda *a, **k: windows.append(a[1].duration)
                        or original(*a, **k))  # fmt: skip
    [clip] = generate_long(gen, ["rain"], SamplingSettings(duration=2.6, **FAST))
    assert clip.wave.numel() == round(2.6 * SR)
    assert len(windows) >= 3 and max(windows) <= 1.0 + 256 * 8 / SR  # the tiny U-Net's 1 s crop
    df = generate(SamplingSettings(duration=2.6, **FAST), "rain", tmp_path / "long.wav",
                  bundle=bundle_dir, device="cpu", dtype="fp32", vocoder="griffin-lim",
                  log=lambda _: None)  # fmt: skip
    assert sf.info(tmp_path / "long.wav").frames == round(2.6 * SR) and len(df) == 1


def test_loop_seam_is_within_the_clip_variation(gen):
    [clip] = sample_loop(gen, ["rain"], SamplingSettings(duration=1.5, **FAST))
    assert clip.wave.numel() % (8 * 256) == 0  # whole latent frames: the latent's period
    seam = loop_seam(clip.wave, MEL)
    assert seam.within_variation, seam
    # the measure tells a seamless loop from a clicking one
    t = torch.arange(SR, dtype=torch.float64) / SR
    hiss = 0.003 * torch.randn(SR, generator=torch.Generator().manual_seed(0))
    whole = 0.5 * torch.sin(2 * math.pi * 441 * t).float() + hiss  # 441 whole periods in 1 s
    assert loop_seam(whole, MEL).within_variation
    cut = (whole * torch.linspace(1, 0.2, SR))[: SR - 37]  # fades out and restarts mid-period
    jump = loop_seam(cut, MEL)
    assert not jump.within_variation and jump.ratio > 3, jump


def test_super_resolution_keeps_the_band_below_the_cutoff(gen):
    low = tone(300, 1.0, 8000, harmonics=4)
    from maa.audio import resample

    up = resample(low, 8000, SR)
    res = super_resolve(gen, up, SamplingSettings(**FAST), cutoff=4000.0)
    spec = [torch.stft(w, 1024, 256, window=torch.hann_window(1024), return_complex=True)
            for w in (res.clip.wave, up)]  # fmt: skip
    below = slice(0, round(3500 / (SR / 1024)))
    err = (spec[0][below] - spec[1][below]).abs().norm() / spec[1][below].abs().norm()
    assert err < 0.05
    above = slice(round(4500 / (SR / 1024)), round(7500 / (SR / 1024)))
    assert spec[0][above].abs().mean() > 10 * spec[1][above].abs().mean()
    assert res.mask[-1].eq(1).all() and res.mask[0].eq(0).all()


def test_unet_input_for_an_inpainting_unet():
    x = torch.randn(3, 4, 10, 6)
    known = torch.randn(1, 4, 10, 6)
    mask = torch.zeros(1, 1, 10, 6)
    mask[..., 2:4] = 1
    assert unet_input(x, known, mask, 4) is x  # a text-to-audio U-Net: zero-shot
    nine = unet_input(x, known, mask, 9)
    assert nine.shape == (3, 9, 10, 6)
    assert torch.equal(nine[:, :4], x) and torch.equal(nine[:, 8:], mask.expand(3, 1, 10, 6))
    assert torch.equal(nine[:, 4:8, :, 2:4], torch.zeros(3, 4, 10, 2))
    assert torch.equal(nine[:, 4:8, :, :2], known[..., :2].expand(3, 4, 10, 2))
    assert torch.equal(unet_input(x, None, None, 9)[:, 8:], torch.ones(3, 1, 10, 6))
    with pytest.raises(MaaError, match="takes 7 input channels"):
        unet_input(x, known, mask, 7)


def test_spans_bands_and_weights():
    assert parse_range("1:2.5", "--span") == (1.0, 2.5)
    assert check_spans([(1.5, 2.0), (0.2, 0.5), (0.4, 1.0)], 3.0) == [(0.2, 1.0), (1.5, 2.0)]
    notes = []
    assert check_spans([(2.5, 9.0)], 3.0, "x.wav", notes.append) == [(2.5, 3.0)]
    assert "past the end of x.wav" in notes[0]
    w = time_weights(100, [(20, 60), (90, 100)], fade=5)
    assert w[:20].eq(0).all() and w[25:55].eq(1).all() and w[60:90].eq(0).all()
    assert torch.all(w[20:25].diff() > 0) and torch.all(w[55:60].diff() < 0)
    assert w[95:].eq(1).all()  # no fade at the file's end
    w = time_weights(100, [(40, 100)], fade=5, inside=False)
    assert w[:35].eq(0).all() and torch.all(w[35:41].diff() > 0) and w[40:].eq(1).all()
    assert check_band((100.0, 11025.0), MEL) == (100.0, 11025.0)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_range("1-2", "--span"), r"--span '1-2': expected START:END in s"),
        (lambda: parse_range("a:b", "--band"), r"expected START:END in Hz, e.g. 4000:8000"),
        (lambda: check_spans([(3.0, 4.0)], 2.5, "in.wav"), r"lies outside in.wav \(2.50 s long\)"),
        (lambda: check_spans([(1.0, 1.0)], 2.5), "has zero length"),
        (lambda: check_spans([(2.0, 1.0)], 2.5), "ends before it starts"),
        (lambda: check_spans([(-0.5, 1.0)], 2.5), "lies outside"),
        (lambda: check_spans([], 2.5), "at least one --span"),
        (lambda: check_band((4000.0, 12000.0), MEL), r"above the Nyquist frequency \(11025 Hz"),
        (lambda: check_band((9000.0, 11000.0), MEL), "no mel bin of the bundle lies in it"),
        (lambda: check_band((500.0, 100.0), MEL), "0 ≤ LOW < HIGH"),
    ],
)
def test_bad_spans_and_bands_say_what_is_wrong(call, message):
    with pytest.raises(MaaError, match=message):
        call()


def test_bad_edit_inputs(gen, wave, bundle_dir, tmp_path, wav_file):
    for strength in (-0.1, 1.5, float("nan")):
        with pytest.raises(MaaError, match=r"--strength must lie in \[0, 1\]"):
            restyle(gen, ["rain"], SamplingSettings(**FAST), wave, strength)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR), SR)
    with pytest.raises(MaaError, match=r"silent.*nothing to edit"):
        load_input(silent, MEL)
    stereo, notes = tmp_path / "stereo.wav", []
    sf.write(stereo, np.stack([wave.numpy(), 0.5 * wave.numpy()], 1), 16000)
    loaded = load_input(stereo, MEL, notes.append)
    assert loaded.numel() == math.ceil(wave.numel() * SR / 16000)  # resampled to the bundle's
    assert any("2 channels" in n for n in notes) and any("16000 Hz" in n for n in notes)
    short = tmp_path / "short.wav"
    sf.write(short, wave[:1000].numpy(), SR)
    with pytest.raises(MaaError, match="shorter than one latent frame"):
        load_input(short, MEL)
    with pytest.raises(MaaError, match="--seconds must be positive"):
        continue_audio(gen, wave, "rain", 0.0, SamplingSettings(**FAST))
    with pytest.raises(MaaError, match="--cutoff 9000 Hz"):
        super_resolve(gen, wave, SamplingSettings(**FAST), 9000.0)
    with pytest.raises(MaaError, match="needs a --prompt"):
        super_resolve(gen, wave, SamplingSettings(candidates=2, **FAST), 4000.0)
    Bundle.create(tmp_path / "no_vae", MEL)
    with pytest.raises(MaaError, match=r"no 'vae' component.*maa train-vae"):
        inpaint_file(SamplingSettings(**FAST), wav_file, "rain", tmp_path / "o.wav", ["0.1:0.5"],
                     bundle=tmp_path / "no_vae", device="cpu")  # fmt: skip
    assert not (tmp_path / "o.wav").exists()


def test_stages_write_the_edit_and_its_picture(bundle_dir, tmp_path, wav_file, wave):
    kw = {"bundle": bundle_dir, "png": True, "device": "cpu", "dtype": "fp32",
          "vocoder": "griffin-lim", "log": lambda _: None}  # fmt: skip
    s = inpaint_file(SamplingSettings(**FAST), wav_file, "rain", tmp_path / "i.wav",
                     ["0.5:1.0", "0.9:1.2"], **kw)  # fmt: skip
    out, _ = sf.read(tmp_path / "i.wav", dtype="int16")
    keep = _outside(wave.numel(), [(0.5, 1.2)])
    assert np.array_equal(out[keep.numpy()], (wave[keep] * 32768).round().short().numpy())
    assert s.png.is_file() and s.outside_l1 < 0.1 and s.seconds > 0
    s = continue_file(SamplingSettings(**FAST), wav_file, "rain", tmp_path / "c.wav", 0.8, **kw)
    assert sf.info(tmp_path / "c.wav").frames == wave.numel() + round(0.8 * SR)
    low = tmp_path / "low.wav"
    sf.write(low, tone(300, 1.0, 8000).numpy(), 8000)
    notes = []
    s = super_resolve_file(SamplingSettings(**FAST), low, tmp_path / "s.wav",
                           **{**kw, "log": notes.append})  # fmt: skip
    assert any("above 4000 Hz" in n for n in notes)  # the file's Nyquist frequency
    assert sf.info(tmp_path / "s.wav").samplerate == SR and s.png.is_file()


def test_cli_editing_commands_end_to_end(bundle_dir, tmp_path, wav_file):
    runner = CliRunner()
    base = ["--bundle", str(bundle_dir), "--device", "cpu", "--steps", "2", "--vocoder",
            "griffin-lim", "--seed", "1"]  # fmt: skip
    runs = [
        (["inpaint", str(wav_file), "a dog", "--span", "0.5:1.0", "--band", "2000:8000",
          "-o", str(tmp_path / "i.wav"), "--png"], "log-mel L1 outside the mask"),
        (["continue", str(wav_file), "rain", "--seconds", "0.6", "-o", str(tmp_path / "c.wav")],
         "2.60 s at 22050 Hz"),
        (["super-resolve", str(wav_file), "--cutoff", "3000", "-o", str(tmp_path / "s.wav")],
         "wrote"),
        (["generate", "rain", "--init-audio", str(wav_file), "--strength", "0.5", "-o",
          str(tmp_path / "g.wav"), "--png"], "2.00 s at 22050 Hz"),
        (["generate", "rain", "--loop", "--duration", "1.2", "-o", str(tmp_path / "l.wav")],
         "loop seam: spectral flux across the wrap"),
    ]  # fmt: skip
    for args, expected in runs:
        res = runner.invoke(app, [*args, *base])
        assert res.exit_code == 0, (args, res.output)
        assert expected in " ".join(res.output.split()), (expected, res.output)
    assert (tmp_path / "i.png").is_file() and (tmp_path / "g.png").is_file()
    assert sf.info(tmp_path / "l.wav").frames == 13 * 8 * 256  # 1.2 s up to whole latent frames


def test_cli_bad_edit_input_is_one_clear_line(bundle_dir, tmp_path, wav_file):
    runner = CliRunner()
    base = ["--bundle", str(bundle_dir), "--device", "cpu", "--steps", "2"]
    out = str(tmp_path / "x.wav")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR), SR)
    cases = [
        (["inpaint", str(wav_file), "rain", "--span", "3:4", "-o", out], "lies outside"),
        (["inpaint", str(wav_file), "rain", "--span", "1:1", "-o", out], "zero length"),
        (["inpaint", str(wav_file), "rain", "--span", "0:1", "--band", "0:20000", "-o", out],
         "above the Nyquist frequency"),
        (["inpaint", str(wav_file), "rain", "-o", out], "at least one --span"),
        (["inpaint", str(wav_file), "rain", "--span", "0:1"], "pass -o OUT.wav"),
        (["inpaint", str(tmp_path / "nope.wav"), "rain", "--span", "0:1", "-o", out],
         "no such file"),
        (["inpaint", str(silent), "rain", "--span", "0:0.5", "-o", out], "silent"),
        (["continue", str(wav_file), "rain", "--seconds", "-1", "-o", out], "--seconds"),
        (["super-resolve", str(wav_file), "--cutoff", "20000", "-o", out], "--cutoff"),
        (["generate", "rain", "--strength", "0.4", "-o", out], "--strength needs --init-audio"),
        (["generate", "rain", "--init-audio", str(wav_file), "--strength", "2", "-o", out],
         "--strength must lie in [0, 1]"),
        (["generate", "rain", "--init-audio", str(wav_file), "--duration", "3", "-o", out],
         "--duration does not apply with --init-audio"),
        (["generate", "rain", "--init-audio", str(wav_file), "--loop", "-o", out],
         "does not combine"),
        (["generate", "rain", "--init-audio", str(silent), "-o", out], "nothing to edit"),
    ]  # fmt: skip
    for args, message in cases:
        res = runner.invoke(app, [*args, *base])
        assert res.exit_code == 2, (args, res.output)
        lines = res.output.strip().splitlines()
        assert lines[-1].startswith("error:") or any(ln.startswith("error:") for ln in lines)
        assert message in " ".join(res.output.split()), (message, res.output)
    assert not (tmp_path / "x.wav").exists()


def test_restyle_through_generate_defaults_to_ddim(bundle_dir, tmp_path, wav_file):
    kw = {"bundle": bundle_dir, "device": "cpu", "dtype": "fp32", "vocoder": "griffin-lim",
          "log": lambda _: None, "init_audio": wav_file}  # fmt: skip
    df = generate(SamplingSettings(**FAST), "rain", tmp_path / "a.wav", **kw,
                  unset=frozenset({"sampler"}))  # fmt: skip
    assert df.sampler[0] == "ddim" and df.strength[0] == 0.3 and df.duration[0] == 2.0
    df = generate(SamplingSettings(sampler="euler", **FAST), "rain", tmp_path / "b.wav", **kw)
    assert df.sampler[0] == "euler"
