"""The shipped default bundle and CLAP: present, small, loadable, used when nothing is passed."""

from __future__ import annotations

import soundfile as sf
import torch
from typer.testing import CliRunner

from maa.bundle import Bundle
from maa.clap import find_default_clap, load_clap
from maa.cli.app import app
from maa.generate import OUT_OF_DOMAIN_COSINE, Generator
from maa.system import ASSETS

BUNDLE = ASSETS / "default_bundle"
CLAP = ASSETS / "clap"


def test_shipped_weights_are_our_own_and_small():
    files = [*BUNDLE.glob("*.safetensors"), *CLAP.glob("*.safetensors")]
    assert {f.name for f in files} == {"vae.safetensors", "unet.safetensors", "clap.safetensors"}
    assert sum(f.stat().st_size for f in files) <= 60 * 2**20
    bundle = Bundle.open(BUNDLE)
    assert bundle.mel.name == "default" and bundle.mel.sample_rate == 22050
    # pretrained parts are references to installed packages, not copies
    assert bundle.component("text_encoder")["ref"].startswith("package:")
    assert not bundle.has("vocoder")
    assert len(bundle.component("unet")["categories"]) >= 20


def test_generate_without_a_bundle_uses_the_shipped_one(tmp_path, monkeypatch):
    monkeypatch.delenv("MAA_CLAP", raising=False)
    out = tmp_path / "dog.wav"
    res = CliRunner().invoke(app, ["generate", "a dog barking in rain", "-o", str(out),
                                   "--steps", "2", "--duration", "0.5", "--seed", "0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "far from" not in res.output
    wave, sr = sf.read(out)
    assert sr == 22050 and len(wave) == round(0.5 * sr) and abs(wave).max() > 1e-3


def test_default_bundle_knows_the_prompt_in_the_readme():
    gen = Generator.from_bundle(BUNDLE, device="cpu", dtype="fp32")
    cat, sim = gen.nearest_category("a dog barking in rain")
    assert cat == "dog" and sim >= OUT_OF_DOMAIN_COSINE
    [clip] = gen.generate("heavy rain", duration=0.5, steps=2, seed=0, candidates=2)
    assert torch.isfinite(clip.wave).all() and len(clip.candidate_scores) == 2


def test_shipped_clap_is_the_default_and_embeds_text(monkeypatch):
    monkeypatch.delenv("MAA_CLAP", raising=False)
    assert find_default_clap() == CLAP
    clap = load_clap(CLAP)
    text = clap.embed_text(["a dog barking", "rain falling steadily"])
    assert text.shape[0] == 2 and torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-4)
