"""``maa train-ldm --task inpaint``: the 2z+1-channel U-Net, its start, resume, and its use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from maa.audio import write_audio
from maa.bundle import Bundle
from maa.cli.app import app
from maa.edit import unet_input
from maa.errors import MaaError
from maa.generate import INPAINT_UNET, Generator, SamplingSettings
from maa.manifest import write_manifest
from maa.mel import get_mel_preset
from maa.models.unet import UNetConfig, build_unet_for
from maa.stages.edit import inpaint_file
from maa.stages.ldm import inpaint_base, inpaint_unet, train_ldm
from maa.stages.ldm_data import random_inpaint_mask
from maa.testing import noise, tiny_bundle, tone
from maa.trainer import TrainConfig

MEL = get_mel_preset("default")
SR = MEL.sample_rate
OPTS = {"warmup": 2, "crop_seconds": 0.5, "task": "inpaint"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A tiny text-to-audio bundle (``base``) and a manifest of 1 s tones and noises."""
    root = tmp_path_factory.mktemp("inpaint_train")
    tiny_bundle(root / "base", with_clap=False)
    rows = []
    for i in range(6):
        for name, caption, wave in [
            (f"high_{i}.wav", "a high tone", tone(1500 + 50 * i, 1.0, SR)),
            (f"low_{i}.wav", "low noise", noise(1.0, SR, seed=i, lowpass=True)),
        ]:
            write_audio(root / name, wave, SR)
            rows.append({"audio_path": name, "caption": caption, "duration": 1.0,
                         "sample_rate": SR, "source": "synthetic", "split": "train"})  # fmt: skip
    write_manifest(pd.DataFrame(rows), root / "m.parquet")
    return root


def _bundle(data: Path, tmp_path: Path, name: str = "b") -> Path:
    return Path(shutil.copytree(data / "base", tmp_path / name))


def _cfg(steps: int, **kw) -> TrainConfig:
    base = {"batch_size": 4, "log_every": 1, "ckpt_every": 2, "device": "cpu", "progress": False}
    return TrainConfig(max_steps=steps, **{**base, **kw})


def _unet(bundle: Path, name: str):
    b = Bundle.open(bundle)
    entry = b.component(name)
    unet = build_unet_for(entry["kind"], entry["config"])
    b.load_into(name, unet)
    return unet.eval()


def test_inpaint_unet_starts_as_the_text_to_audio_unet(data):
    base = _unet(data / "base", "unet")
    entry = inpaint_base(Bundle.open(data / "base"))
    z = entry["config"]["out_channels"]
    cfg = UNetConfig.from_dict({**entry["config"], "in_channels": 2 * z + 1})
    unet = inpaint_unet(cfg, base.state_dict()).eval()
    assert unet.conv_in.weight.shape[1] == 2 * z + 1
    assert not unet.conv_in.weight[:, z:].any()  # the new input channels start at zero
    torch.manual_seed(0)
    x = torch.randn(2, z, 10, 12)
    known, mask = torch.randn(1, z, 10, 12), (torch.rand(1, 1, 10, 12) > 0.5).float()
    tokens = torch.randn(2, 5, 384)
    with torch.no_grad():
        want = base(x, torch.tensor([10, 500]), encoder_hidden_states=tokens).sample
        got = unet(unet_input(x, known, mask, 2 * z + 1), torch.tensor([10, 500]),
                   encoder_hidden_states=tokens).sample  # fmt: skip
    assert got.shape == want.shape == x.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_random_masks_are_spans_and_boxes_and_keep_the_other_draws():
    kinds = set()
    for i in range(200):
        m = random_inpaint_mask(10, 12, torch.Generator().manual_seed(i))
        assert m.shape == (1, 10, 12) and set(m.unique().tolist()) <= {0.0, 1.0} and m.any()
        rows, cols = m[0].any(1), m[0].any(0)
        assert m[0][rows][:, cols].all()  # one rectangle
        kinds.add("all" if m.all() else "span" if rows.all() else "box")
    assert kinds == {"all", "span", "box"}


def test_training_writes_unet_inpaint_and_resume_equals_uninterrupted(data, tmp_path):
    a, b = _bundle(data, tmp_path, "a"), _bundle(data, tmp_path, "b")
    before = load_file(a / "unet.safetensors")
    kw = {"ema_decay": 0.99}
    train_ldm(data / "m.parquet", a, train_cfg=_cfg(4, **kw), **OPTS)
    train_ldm(data / "m.parquet", b, train_cfg=_cfg(2, **kw), **OPTS)
    second = train_ldm(data / "m.parquet", b, train_cfg=_cfg(4, **kw), resume=True, **OPTS)
    assert second.resumed_from == 2 and second.cache_reused
    wa, wb = load_file(a / "unet_inpaint.safetensors"), load_file(b / "unet_inpaint.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # the text-to-audio U-Net is left as it was: the bundle still generates with it
    after = load_file(a / "unet.safetensors")
    assert all(torch.equal(before[k], after[k]) for k in before)
    meta = json.loads((a / "bundle.json").read_text())["components"]
    inp, t2a = meta[INPAINT_UNET], meta["unet"]
    assert inp["config"]["in_channels"] == 2 * t2a["config"]["out_channels"] + 1
    assert inp["config"]["out_channels"] == t2a["config"]["out_channels"]
    assert inp["scale_factor"] == t2a["scale_factor"]  # latents scaled as the base saw them
    assert inp["task"] == "inpaint" and inp["steps"] == 4
    assert (a / "train" / INPAINT_UNET / "cache").is_dir()
    assert not (a / "train" / "unet").exists()
    # trained: the new channels have moved away from zero
    z = t2a["config"]["out_channels"]
    assert wa["conv_in.weight"][:, z:].abs().sum() > 0
    # the generator loads either U-Net of the bundle
    gen = Generator.from_bundle(a, device="cpu", dtype="fp32", vocoder="griffin-lim",
                                unet=INPAINT_UNET)  # fmt: skip
    assert gen.unet.config.in_channels == 2 * z + 1
    assert gen.latent_shape(1.0)[0] == z


def test_maa_inpaint_uses_the_trained_unet_and_keeps_the_rest(data, tmp_path, monkeypatch):
    bundle = _bundle(data, tmp_path)
    train_ldm(data / "m.parquet", bundle, train_cfg=_cfg(2), **OPTS)
    seen = []
    load = Generator.from_bundle.__func__

    def spy(cls, *args, **kwargs):
        gen = load(cls, *args, **kwargs)
        seen.append(gen.unet.config.in_channels)
        return gen

    monkeypatch.setattr(Generator, "from_bundle", classmethod(spy))
    wave = tone(440, 2.0, SR, harmonics=3) + noise(2.0, SR, amp=0.05)
    wave = torch.round(wave * 32768) / 32768
    path = tmp_path / "in.wav"
    sf.write(path, wave.numpy(), SR, subtype="PCM_16")
    s = inpaint_file(SamplingSettings(steps=3, seed=4), path, "rain", tmp_path / "out.wav",
                     ["0.5:1.2"], bundle=bundle, device="cpu", dtype="fp32",
                     vocoder="griffin-lim", log=lambda _: None)  # fmt: skip
    z = Bundle.open(bundle).component("unet")["config"]["out_channels"]
    assert seen == [2 * z + 1]
    out, _ = sf.read(tmp_path / "out.wav", dtype="int16")
    keep = np.ones(wave.numel(), dtype=bool)
    keep[round(0.5 * SR) : round(1.2 * SR)] = False
    assert np.array_equal(out[keep], (wave.numpy()[keep] * 32768).round().astype(np.int16))
    assert s.outside_l1 < 0.1
    # a bundle without one keeps the text-to-audio U-Net (zero-shot)
    seen.clear()
    inpaint_file(SamplingSettings(steps=2, seed=4), path, "rain", tmp_path / "zs.wav",
                 ["0.5:1.2"], bundle=data / "base", device="cpu", dtype="fp32",
                 vocoder="griffin-lim", log=lambda _: None)  # fmt: skip
    assert seen == [z]


def test_bad_inpaint_training_input(data, tmp_path):
    no_unet = tmp_path / "no_unet"
    shutil.copytree(data / "base", no_unet)
    b = Bundle.open(no_unet)
    del b.components["unet"]
    b._write_meta()
    with pytest.raises(MaaError, match="text-to-audio U-Net, and it has none"):
        train_ldm(data / "m.parquet", no_unet, train_cfg=_cfg(1), **OPTS)
    with pytest.raises(MaaError, match="--task must be one of"):
        train_ldm(data / "m.parquet", _bundle(data, tmp_path), train_cfg=_cfg(1), task="outpaint")
    # an inpainting U-Net in the 'unet' slot is no text-to-audio U-Net to start from
    twice = _bundle(data, tmp_path, "twice")
    train_ldm(data / "m.parquet", twice, train_cfg=_cfg(1), **OPTS)
    b = Bundle.open(twice)
    b.components["unet"] = b.components[INPAINT_UNET]
    b._write_meta()
    with pytest.raises(MaaError, match="starts from a text-to-audio U-Net"):
        train_ldm(data / "m.parquet", twice, train_cfg=_cfg(1), **{**OPTS, "task": "inpaint"})
    with pytest.raises(MaaError, match="train-ldm --task inpaint"):
        Generator.from_bundle(data / "base", device="cpu", unet=INPAINT_UNET)
    res = CliRunner().invoke(app, ["train-ldm", "--task", "inpaint", "--manifest",
                                   str(data / "m.parquet"), "--bundle", str(no_unet),
                                   "--device", "cpu", "--max-steps", "1"])  # fmt: skip
    assert res.exit_code != 0
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "it has none" in " ".join(res.output.split()), res.output
