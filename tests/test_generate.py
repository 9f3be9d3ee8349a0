"""Generation: shapes, seeded determinism, guidance, CLAP reranking, batch mode, bad input."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from maa.bundle import Bundle
from maa.cli.app import app
from maa.errors import MaaError
from maa.generate import Generator, SamplingSettings, loudness_normalize
from maa.manifest import read_manifest
from maa.mel import get_mel_preset
from maa.models.unet import build_unet, get_unet_config
from maa.models.vae import VAE_PRESETS
from maa.stages.generate import generate, out_of_domain_note, slugify, unique_names
from maa.testing import tiny_bundle

MEL = get_mel_preset("default")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    """A bundle with a tiny VAE, a tiny U-Net (random weights), MiniLM and a tiny CLAP."""
    return tiny_bundle(tmp_path_factory.mktemp("gen") / "bundle")


@pytest.fixture(scope="module")
def gen(bundle_dir):
    return Generator.from_bundle(bundle_dir, device="cpu", dtype="fp32", vocoder="griffin-lim")


@pytest.mark.parametrize("duration", [0.3, 1.0, 2.5])
def test_requested_duration(gen, duration):
    [clip] = gen.generate("a high tone", duration=duration, steps=2, seed=0)
    assert clip.sr == 22050
    assert clip.wave.shape == (round(duration * 22050),)
    assert clip.mel.shape[0] == 80 and clip.mel.shape[1] % 8 == 0
    assert clip.mel.shape[1] * 256 >= clip.wave.numel()
    assert clip.wave.abs().max() <= 10 ** (-1 / 20) + 1e-6  # peak ceiling -1 dBFS


def test_same_seed_same_audio_and_seed_per_prompt(gen):
    kw = {"duration": 0.5, "steps": 3, "sampler": "euler-a"}  # stochastic sampler
    a = gen.generate(["a high tone", "low noise"], seed=7, **kw)
    b = gen.generate(["a high tone", "low noise"], seed=7, **kw)
    assert all(torch.equal(x.wave, y.wave) for x, y in zip(a, b, strict=True))
    assert [x.seed for x in a] == [7, 8]
    c = gen.generate(["a high tone"], seed=8, **kw)
    assert not torch.equal(a[0].wave, c[0].wave)
    # prompt 2 with seed 8 in a batch matches prompt 2 alone with seed 8 (up to float error)
    alone = gen.generate(["low noise"], seed=8, **kw)
    cos = torch.nn.functional.cosine_similarity(a[1].wave, alone[0].wave, dim=0)
    assert float(cos) > 0.999


def test_guidance_one_is_the_conditional_pass(gen):
    x = torch.randn(2, 4, 10, 6, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(500)
    emb = gen.text_encoder.encode(["a high tone", "low noise", ""])
    cond = emb.__class__(emb.tokens[:2], emb.mask[:2], emb.pooled[:2])
    uncond = emb.__class__(emb.tokens[[2, 2]], emb.mask[[2, 2]], emb.pooled[[2, 2]])
    batched = gen.predict_noise(x, t, cond, uncond, 1.0)  # one forward of 2B
    alone = gen.predict_noise(x, t, cond, None, 1.0)
    assert torch.allclose(batched, alone, atol=1e-5)
    guided = gen.predict_noise(x, t, cond, uncond, 3.0)
    assert not torch.allclose(guided, alone, atol=1e-3)
    kw = {"duration": 0.5, "steps": 3, "seed": 3}
    plain = gen.generate("a high tone", guidance=1.0, **kw)[0].wave
    negative = gen.generate("a high tone", guidance=1.0, negative_prompt="noise", **kw)[0].wave
    assert torch.equal(plain, negative)  # no unconditional pass at guidance 1
    assert not torch.equal(plain, gen.generate("a high tone", guidance=3.0, **kw)[0].wave)


def test_clap_reranking_keeps_the_best_candidate(gen):
    [clip] = gen.generate("a high tone", duration=0.6, steps=2, seed=5, candidates=3)
    scores = clip.candidate_scores
    assert len(scores) == 3 and len(set(scores)) == 3
    assert clip.clap_score == max(scores) and scores[clip.candidate] == max(scores)
    rescored = gen.clap().score(clip.wave.unsqueeze(0), clip.sr, ["a high tone"])
    assert float(rescored[0]) == pytest.approx(clip.clap_score, abs=1e-5)


def test_every_sampler_runs(gen):
    for name in ("ddim", "dpmpp-2m", "unipc", "euler", "heun", "pndm"):
        [clip] = gen.generate("low noise", duration=0.3, steps=2, seed=0, sampler=name)
        assert torch.isfinite(clip.wave).all()


def test_bad_generation_input(gen, bundle_dir, tmp_path):
    for prompt in ("", "   ", ["ok", " "]):
        with pytest.raises(MaaError, match="empty"):
            gen.generate(prompt, duration=1.0)
    for duration in (0.0, -1.0, 61.0):
        with pytest.raises(MaaError, match="--duration"):
            gen.generate("x", duration=duration)
    with pytest.raises(MaaError, match="unknown sampler"):
        gen.generate("x", sampler="plms2")
    # a bundle without a CLAP cannot rerank
    no_clap = Generator(gen.unet, gen.vae, gen.text_encoder, gen.vocoder, gen.mel,
                        gen.schedule, gen.scale_factor)  # fmt: skip
    with pytest.raises(MaaError, match="--clap PATH"):
        no_clap.generate("x", duration=0.5, candidates=2)
    # a text encoder narrower than the U-Net's cross-attention
    with pytest.raises(MaaError, match="cross-attention"):
        Generator(build_unet(get_unet_config("tiny").with_text_width(32)), gen.vae,
                  gen.text_encoder, gen.vocoder, gen.mel, gen.schedule, 1.0)  # fmt: skip
    # a bundle missing its U-Net
    partial = Bundle.create(tmp_path / "partial", MEL)
    partial.save_module("vae", gen.vae, "vae", VAE_PRESETS["tiny"].to_dict())
    with pytest.raises(MaaError, match=r"no 'unet' component.*maa train-ldm"):
        Generator.from_bundle(tmp_path / "partial", device="cpu")


def test_loudness_normalisation_is_safe():
    t = torch.arange(22050) / 22050
    quiet = 0.01 * torch.sin(2 * torch.pi * 440 * t)
    out = loudness_normalize(quiet, 22050)
    assert 0.05 < float(out.pow(2).mean().sqrt()) < 0.2  # brought up to about -20 LUFS
    loud = loudness_normalize(torch.sign(quiet) * 0.99, 22050)
    assert float(loud.abs().max()) <= 10 ** (-1 / 20) + 1e-6
    assert torch.equal(loudness_normalize(torch.zeros(100), 22050), torch.zeros(100))


def test_batch_mode_manifest_lists_every_prompt(bundle_dir, tmp_path):
    prompts = ["a high tone", "Low noise!", "a high tone", "  ünïcode wind "]
    assert unique_names(prompts, ".wav") == [
        "a_high_tone.wav", "low_noise.wav", "a_high_tone-2.wav", "unicode_wind.wav"]  # fmt: skip
    assert slugify("!!!") == "prompt"
    file, out, notes = tmp_path / "prompts.txt", tmp_path / "out", []
    file.write_text("\n".join(prompts))
    settings = SamplingSettings(duration=0.4, steps=2, seed=10)
    df = generate(settings, prompts=file, out_dir=out, bundle=bundle_dir, png=True, device="cpu",
                  dtype="fp32", vocoder="griffin-lim", log=notes.append)  # fmt: skip
    assert any(n.startswith("warning: Griffin-Lim") for n in notes)
    man = read_manifest(out / "generated.parquet")
    assert list(man["caption"]) == [p.strip() for p in prompts] == list(df["caption"])
    assert list(man["seed"]) == [10, 11, 12, 13]
    assert list(man["steps"]) == [2] * 4 and list(man["sampler"]) == ["dpmpp-2m"] * 4
    for name in man["audio_path"]:
        data, sr = sf.read(out / name)
        assert sr == 22050 and len(data) == round(0.4 * 22050)
        assert (out / name).with_suffix(".png").is_file()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "--steps must be a whole number ≥ 1, got 0"),
        ({"steps": 2.5}, "--steps must be a whole number ≥ 1"),
        ({"candidates": -1}, "--candidates must be a whole number ≥ 1, got -1"),
        ({"batch_size": 0}, "batch_size must be a whole number ≥ 1"),
        ({"guidance": -0.5}, "--guidance must be ≥ 0"),
        ({"guidance": float("nan")}, "--guidance must be ≥ 0"),
        ({"duration": 0.0}, "--duration must be positive"),
        ({"duration": 61.0}, "longer than the supported 60 s"),
        ({"sampler": "plms2"}, "unknown sampler 'plms2'; choose one of ddim, dpmpp-2m"),
    ],
)
def test_settings_reject_bad_values_naming_the_option(kwargs, message):
    with pytest.raises(MaaError, match=message):
        SamplingSettings(**kwargs)


def test_settings_record_a_seed_and_are_frozen():
    settings = SamplingSettings()
    assert isinstance(settings.seed, int) and SamplingSettings(seed=3).seed == 3
    with pytest.raises(AttributeError):
        settings.steps = 1  # type: ignore[misc]


@pytest.mark.parametrize("flag", ["--steps", "--candidates"])
def test_cli_zero_count_is_one_clear_error(tmp_path, flag):
    res = CliRunner().invoke(app, ["generate", "x", "-o", str(tmp_path / "x.wav"), flag, "0"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"error: {flag} must be a whole number ≥ 1, got 0"]
    assert not (tmp_path / "x.wav").exists()


def test_package_root_exposes_the_api_lazily():
    code = "import maa, sys; assert 'torch' not in sys.modules, 'import maa loaded torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
    from maa import Bundle as RootBundle
    from maa import Generator as RootGenerator

    assert RootGenerator is Generator and RootBundle is Bundle
    with pytest.raises(ImportError, match="cannot import name 'Nope'"):
        from maa import Nope  # noqa: F401


def test_cli_generate_single_batch_and_errors(bundle_dir, tmp_path):
    runner = CliRunner()
    base = ["--bundle", str(bundle_dir), "--device", "cpu", "--steps", "2", "--vocoder",
            "griffin-lim", "--duration", "0.5"]  # fmt: skip
    out = tmp_path / "one.wav"
    res = runner.invoke(app, ["generate", "a high tone", "-o", str(out), "--png", *base])
    assert res.exit_code == 0, res.output
    assert sf.info(out).frames == round(0.5 * 22050) and out.with_suffix(".png").is_file()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a high tone\n\n# a comment\nlow noise\n")
    res = runner.invoke(app, ["generate", "--prompts", str(prompts), "--out-dir",
                              str(tmp_path / "many"), *base])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(pd.read_parquet(tmp_path / "many" / "generated.parquet")) == 2

    bad = tmp_path / "bad"
    bad.mkdir()
    not_a_dir = tmp_path / "file.txt"
    not_a_dir.write_text("x")
    cases = [
        (["generate", "  ", "-o", str(bad / "x.wav"), *base], "empty"),
        (["generate", "x", "-o", str(bad / "x.wav"), *base, "--duration", "0"], "--duration"),
        (["generate", "x", "-o", str(bad / "x.wav"), *base, "--duration", "500"], "--duration"),
        (["generate", "x", "-o", str(tmp_path / "missing" / "x.wav"), *base], "does not exist"),
        (["generate", "x", "-o", str(not_a_dir / "x.wav"), *base], "does not exist"),
        (["generate", "x", "-o", str(bad / "x.mp4"), *base], "unsupported"),
        (["generate", "x", "-o", str(bad / "x.wav"), "--bundle", str(bad)], "not a maa bundle"),
        (["generate", "x", "-o", str(bad / "x.wav"), *base, "--candidates", "0"], "candidates"),
        (["generate", "x", "-o", str(bad / "x.wav"), *base, "--steps", "0"], "--steps must be"),
        (["generate", "x", "-o", str(bad / "x.wav"), *base, "--guidance", "-1"], "--guidance"),
        (["generate", "x", "-o", str(bad / "x.wav"), *base, "--sampler", "x"], "unknown sampler"),
        (["generate", "x", "--prompts", str(not_a_dir), "--out-dir", str(bad)], "not both"),
        (
            ["generate", "--prompts", str(not_a_dir), "--out-dir", str(bad / "a" / "b")],
            "does not exist",
        ),
    ]
    for args, message in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert message in " ".join(res.output.split()), (message, res.output)
    assert list(bad.iterdir()) == []  # no partial files


def test_default_bundle_missing_says_what_to_pass(tmp_path, monkeypatch):
    import maa.system

    monkeypatch.setattr(maa.system, "ASSETS", tmp_path / "assets")
    res = CliRunner().invoke(app, ["generate", "x", "-o", str(tmp_path / "x.wav")])
    assert res.exit_code == 2 and "pass --bundle" in " ".join(res.output.split())
    assert not (tmp_path / "x.wav").exists()


def test_out_of_domain_prompt_gets_a_note_and_still_generates(gen, bundle_dir, tmp_path):
    from maa.generate import OUT_OF_DOMAIN_COSINE

    assert set(gen.categories) == {"rain", "dog"}
    cat, sim = gen.nearest_category("a dog barks in the rain")
    assert cat == "dog" and sim >= OUT_OF_DOMAIN_COSINE
    cat, sim = gen.nearest_category("a lecture on quantum physics")
    assert sim < OUT_OF_DOMAIN_COSINE
    runner = CliRunner()
    base = ["--bundle", str(bundle_dir), "--device", "cpu", "--steps", "2", "--vocoder",
            "griffin-lim", "--duration", "0.5"]  # fmt: skip
    res = runner.invoke(app, ["generate", "a lecture on quantum physics", "-o",
                              str(tmp_path / "far.wav"), *base])  # fmt: skip
    text = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "far from the 2 sound categories" in text and "--list-categories" in text
    assert (tmp_path / "far.wav").is_file()
    res = runner.invoke(app, ["generate", "a dog barking", "-o", str(tmp_path / "d.wav"), *base])
    assert res.exit_code == 0 and "far from" not in res.output
    res = runner.invoke(app, ["generate", "--list-categories", "--bundle", str(bundle_dir)])
    assert res.exit_code == 0 and "rain falling steadily" in res.output and "dog" in res.output


def test_out_of_domain_note_trims_a_long_prompt(gen):
    long = "a lecture on quantum physics given in a large echoing hall " * 4
    note = out_of_domain_note(gen, [long], None)
    quoted = note.split("'")[1]
    assert note.startswith("note: ") and len(quoted) <= 80 and quoted.endswith("…")
    assert long.startswith(quoted[:-1]) and "--list-categories` or" in note
    assert out_of_domain_note(gen, ["a dog barking"], None) is None


def test_cli_cuda_requested_without_gpu(bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    res = CliRunner().invoke(app, ["generate", "x", "-o", str(tmp_path / "x.wav"),
                                   "--bundle", str(bundle_dir), "--device", "cuda"])  # fmt: skip
    assert res.exit_code == 2 and "no CUDA GPU" in res.output
    assert not (tmp_path / "x.wav").exists()


def test_bundle_recorded_sampling_defaults_apply_unless_given(tmp_path):
    import json
    import shutil

    from maa.generate import SamplingSettings

    root = tiny_bundle(tmp_path / "b", with_clap=False)
    meta = json.loads((root / "bundle.json").read_text())
    meta["components"]["unet"]["defaults"] = {"sampler": "ddim", "steps": 3, "guidance": 2.0}
    (root / "bundle.json").write_text(json.dumps(meta))
    gen = Generator.from_bundle(root, device="cpu")
    s = gen.with_defaults(SamplingSettings(seed=0), {"sampler", "steps", "guidance"})
    assert (s.sampler, s.steps, s.guidance) == ("ddim", 3, 2.0)
    s = gen.with_defaults(SamplingSettings(seed=0, steps=2), {"sampler", "guidance"})
    assert (s.sampler, s.steps, s.guidance) == ("ddim", 2, 2.0)  # an explicit value wins
    # the API: same audio as passing the recorded defaults explicitly
    a = gen.generate("a tone", duration=0.5, seed=1)[0].wave
    b = gen.generate("a tone", duration=0.5, seed=1, sampler="ddim", steps=3, guidance=2.0)[0].wave
    assert torch.equal(a, b)
    # a bundle without recorded defaults keeps maa's
    plain = Generator.from_bundle(shutil.copytree(root, tmp_path / "p"), device="cpu")
    plain.defaults = {}
    assert plain.with_defaults(SamplingSettings(seed=0), {"steps"}).steps == 25
