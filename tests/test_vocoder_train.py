"""HiFi-GAN training through the shared trainer: loss falls, resume is bit-exact, CLI works."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from maa.errors import MaaError
from maa.manifest import read_manifest, write_manifest
from maa.stages.vocoder import train_vocoder
from maa.trainer import TrainConfig


def _cfg(steps: int, **kw) -> TrainConfig:
    base = {
        "max_steps": steps,
        "batch_size": 2,
        "ckpt_every": 100,
        "log_every": 1,
        "device": "cpu",
        "progress": False,
        "grad_clip": None,
    }
    return TrainConfig(**{**base, **kw})


def test_tiny_training_lowers_mel_loss(clip_manifest, tmp_path):
    out = tmp_path / "voc"
    s = train_vocoder(
        clip_manifest,
        out,
        preset="tiny",
        train_cfg=_cfg(16, batch_size=4),
        segment_frames=8,
        lr=3e-3,
    )
    assert s.steps == 16 and s.clips == 8 and not s.skipped
    metrics = pd.read_csv(out / "train" / "vocoder" / "metrics.csv")
    first, last = metrics["mel_l1"].iloc[:4].mean(), metrics["mel_l1"].iloc[-4:].mean()
    assert last < 0.85 * first, (first, last)
    weights = load_file(out / "vocoder.safetensors")
    assert "upsampler.0.weight" in weights  # weight norm folded: plain SpeechT5HifiGan keys
    assert not any("parametrizations" in k for k in weights)


def test_resume_equals_uninterrupted(clip_manifest, tmp_path):
    common = {"segment_frames": 4, "lr": 1e-3}
    train_vocoder(
        clip_manifest, tmp_path / "a", preset="tiny", train_cfg=_cfg(4, ckpt_every=2), **common
    )
    train_vocoder(
        clip_manifest, tmp_path / "b", preset="tiny", train_cfg=_cfg(2, ckpt_every=2), **common
    )
    train_vocoder(
        clip_manifest,
        tmp_path / "b",
        preset="tiny",
        train_cfg=_cfg(4, ckpt_every=2),
        resume=True,
        **common,
    )
    a = load_file(tmp_path / "a" / "vocoder.safetensors")
    b = load_file(tmp_path / "b" / "vocoder.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_unreadable_files_are_skipped_not_fatal(clip_manifest, tmp_path):
    df = read_manifest(clip_manifest)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    extra = df.iloc[:1].copy()
    extra["audio_path"] = str(bad)
    extra["split"] = "train"
    manifest = tmp_path / "m.parquet"
    write_manifest(pd.concat([df, extra], ignore_index=True), manifest)
    s = train_vocoder(
        manifest, tmp_path / "voc", preset="tiny", train_cfg=_cfg(1), segment_frames=4
    )
    assert len(s.skipped) == 1 and "broken.wav" in s.skipped[0][1]

    only_bad = extra.copy()
    write_manifest(only_bad, tmp_path / "bad.parquet")
    with pytest.raises(MaaError, match="no usable training clips"):
        train_vocoder(tmp_path / "bad.parquet", tmp_path / "voc2", preset="tiny", train_cfg=_cfg(1))


def test_init_default_needs_v1_preset(clip_manifest, tmp_path):
    with pytest.raises(MaaError, match="V1 generator shape"):
        train_vocoder(
            clip_manifest, tmp_path / "v", preset="tiny", train_cfg=_cfg(1), init="default"
        )


def test_cli_train_then_vocode_with_bundle(clip_manifest, clip_dir, tmp_path):
    from maa.cli.app import app

    out = tmp_path / "bundle"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "train-vocoder",
            "--manifest",
            str(clip_manifest),
            "--out",
            str(out),
            "--preset",
            "tiny",
            "--mel",
            "paper",
            "--max-steps",
            "2",
            "--batch-size",
            "2",
            "--segment-frames",
            "4",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "trained to step 2" in " ".join(res.output.split())
    wav = next(clip_dir.rglob("*.wav"))
    res = runner.invoke(
        app, ["vocode", str(wav), "-o", str(tmp_path / "o.wav"), "--vocoder", str(out)]
    )
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "16000 Hz" in text and "log-mel L1" in text
    # a 16 kHz vocoder bundle cannot vocode the 22.05 kHz default preset
    res = runner.invoke(
        app,
        [
            "vocode",
            str(wav),
            "-o",
            str(tmp_path / "p.wav"),
            "--vocoder",
            str(out),
            "--mel",
            "default",
        ],
    )
    assert res.exit_code == 2
    assert "'paper'" in res.output and "'default'" in res.output
