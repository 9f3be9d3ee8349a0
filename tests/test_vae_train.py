"""The shared trainer through the VAE stage: learning, bit-exact resume, CLI, bad input."""

from __future__ import annotations

import csv

import pytest
import torch
from typer.testing import CliRunner

from maa.bundle import Bundle
from maa.cli.app import app
from maa.errors import MaaError
from maa.models.discriminator import DiscConfig, MultiWindowDiscriminator
from maa.stages.vae import train_vae
from maa.trainer import TrainConfig

runner = CliRunner()


def _cfg(steps: int, **kw) -> TrainConfig:
    base = dict(
        max_steps=steps, batch_size=4, ckpt_every=steps, log_every=1, seed=7, progress=False
    )
    base.update(kw)
    return TrainConfig(**base)


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_vae_learns(clip_manifest, tmp_path):
    out = tmp_path / "b"
    train_vae(clip_manifest, out, preset="tiny", train_cfg=_cfg(30, val_every=30), crop_frames=32)
    rows = [r for r in _csv(out / "train" / "vae" / "metrics.csv") if r.get("rec_l1")]
    first = sum(float(r["rec_l1"]) for r in rows[:5]) / 5
    last = sum(float(r["rec_l1"]) for r in rows[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    assert Bundle.open(out).component("vae")["steps"] == 30


def test_resume_equals_uninterrupted(clip_manifest, tmp_path):
    """Killed at step 3 and resumed to 6 == 6 straight: GAN, EMA and RNG state included."""
    kw = dict(crop_frames=32, disc_start=2)
    train_vae(clip_manifest, tmp_path / "a", preset="tiny", train_cfg=_cfg(6, ema_decay=0.9), **kw)
    train_vae(
        clip_manifest,
        tmp_path / "b",
        preset="tiny",
        train_cfg=_cfg(6, ema_decay=0.9, ckpt_every=3),
        **kw,
    )
    # simulate a crash after the step-3 checkpoint: keep that state, discard the rest
    state_b = tmp_path / "b" / "train" / "vae" / "state.pt"
    train_vae(clip_manifest, tmp_path / "c", preset="tiny", train_cfg=_cfg(3, ema_decay=0.9), **kw)
    state_c = tmp_path / "c" / "train" / "vae" / "state.pt"
    assert state_b.exists() and state_c.exists()
    summary = train_vae(
        clip_manifest,
        tmp_path / "c",
        preset="tiny",
        train_cfg=_cfg(6, ema_decay=0.9),
        resume=True,
        **kw,
    )
    assert summary.resumed_from == 3
    a = Bundle.open(tmp_path / "a").state_dict("vae")
    c = Bundle.open(tmp_path / "c").state_dict("vae")
    assert a.keys() == c.keys()
    for k in a:
        assert torch.equal(a[k], c[k]), k
    sa = torch.load(tmp_path / "a" / "train" / "vae" / "state.pt", weights_only=True)
    sc = torch.load(state_c, weights_only=True)
    for k, v in sa["modules"]["loss"].items():  # discriminator and logvar too
        assert torch.equal(v, sc["modules"]["loss"][k]), k


def test_refuses_to_overwrite_and_checks_settings(clip_manifest, tmp_path):
    train_vae(clip_manifest, tmp_path / "b", preset="tiny", train_cfg=_cfg(1), crop_frames=32)
    with pytest.raises(MaaError, match="Pass --resume"):
        train_vae(clip_manifest, tmp_path / "b", preset="tiny", train_cfg=_cfg(2), crop_frames=32)
    with pytest.raises(MaaError, match="model settings differ"):
        train_vae(
            clip_manifest,
            tmp_path / "b",
            preset="tiny",
            train_cfg=_cfg(2),
            resume=True,
            crop_frames=64,
        )
    with pytest.raises(MaaError, match="already reached step 1"):
        train_vae(
            clip_manifest,
            tmp_path / "b",
            preset="tiny",
            train_cfg=_cfg(1),
            resume=True,
            crop_frames=32,
        )
    with pytest.raises(MaaError, match="unknown preset 'huge'"):
        train_vae(clip_manifest, tmp_path / "x", preset="huge", train_cfg=_cfg(1))
    with pytest.raises(MaaError, match="multiple of 8"):
        train_vae(clip_manifest, tmp_path / "y", preset="tiny", train_cfg=_cfg(1), crop_frames=30)
    with pytest.raises(MaaError, match="fewer than one batch"):
        train_vae(clip_manifest, tmp_path / "z", preset="tiny", train_cfg=_cfg(1, batch_size=64))


def test_bad_clips_are_skipped_not_fatal(clip_manifest, tmp_path):
    import pandas as pd

    from maa.manifest import read_manifest, write_manifest

    df = read_manifest(clip_manifest)
    bad = df.iloc[:2].copy()
    bad["audio_path"] = [str(tmp_path / "missing.wav"), str(tmp_path / "junk.wav")]
    bad["split"] = "train"
    (tmp_path / "junk.wav").write_text("junk")
    # absolute paths, since the new manifest lives elsewhere
    df["audio_path"] = [str((clip_manifest.parent / p).resolve()) for p in df["audio_path"]]
    write_manifest(pd.concat([df, bad]), tmp_path / "m.parquet")
    summary = train_vae(
        tmp_path / "m.parquet", tmp_path / "b", preset="tiny", train_cfg=_cfg(1), crop_frames=32
    )
    reasons = " ".join(r for _, r in summary.skipped)
    assert "no such file" in reasons and "not a readable audio file" in reasons
    assert summary.clips == 8


def test_multi_window_discriminator_shapes():
    disc = MultiWindowDiscriminator(DiscConfig(80, (32, 64, 128), 8), pad_value=-11.5)
    mel = torch.randn(3, 80, 96)  # shorter than the 128-frame window: padded
    assert disc(mel).shape == (3,)
    starts = disc.sample_starts(3, 96, mel.device)
    assert torch.equal(disc(mel, starts), disc(mel, starts))


def test_cli_end_to_end(clip_dir, tmp_path):
    m = tmp_path / "m.parquet"
    assert runner.invoke(app, ["manifest", "scan", str(clip_dir), "-o", str(m)]).exit_code == 0
    b = tmp_path / "bundle"
    args = [
        "train-vae",
        "--manifest",
        str(m),
        "--out",
        str(b),
        "--preset",
        "tiny",
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--crop-frames",
        "32",
        "--device",
        "cpu",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "trained to step 2" in res.output
    png = tmp_path / "r.png"
    wav = next(clip_dir.rglob("*.wav"))
    res = runner.invoke(app, ["reconstruct", str(wav), "-o", str(png), "--bundle", str(b)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(
        app, ["reconstruct", "--report", str(m), "--bundle", str(b), "--split", "all"]
    )
    assert res.exit_code == 0 and "10 file(s)" in res.output
    res = runner.invoke(
        app, ["reconstruct", str(wav), "-o", str(tmp_path / "r.jpg"), "--bundle", str(b)]
    )
    assert res.exit_code == 2 and "must be .png" in res.output
    if not torch.cuda.is_available():
        res = runner.invoke(app, [*args[:-2], "--device", "cuda", "--out", str(tmp_path / "c")])
        assert res.exit_code == 2 and "no CUDA GPU" in res.output


def test_latent_channels_option_reaches_the_bundle(clip_manifest, tmp_path):
    from typer.testing import CliRunner

    from maa.bundle import Bundle
    from maa.cli.app import app

    args = ["train-vae", "--manifest", str(clip_manifest), "--preset", "tiny", "--max-steps",
            "1", "--batch-size", "2", "--crop-frames", "16", "--device", "cpu"]  # fmt: skip
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "z8"), "--latent-channels", "8"])
    assert res.exit_code == 0, res.output
    assert Bundle.open(tmp_path / "z8").config("vae")["latent_channels"] == 8
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "z0"), "--latent-channels", "0"])
    assert (
        res.exit_code == 2 and "--latent-channels must be a whole number from 1 to 64" in res.output
    )
    assert not (tmp_path / "z0").exists()
