"""Evaluation: official-layout PANNs/VGGish, checkpoint loading, pairing, caching, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from maa.audio import write_audio
from maa.errors import MaaError
from maa.models.panns import Cnn14, build_panns, load_panns
from maa.models.vggish import Vggish, build_vggish, load_vggish
from maa.stages.eval_features import pair_by_name, pairing_keys
from maa.stages.evaluate import evaluate
from maa.testing import bursts, chirp, noise, tone

# From the released code: audioset_tagging_cnn/pytorch/models.py (Cnn14 with torchlibrosa's
# Spectrogram/LogmelFilterBank, window 512, 64 mels, 527 classes) — Cnn14_16k_mAP=0.438.pth.
OFFICIAL_PANNS_KEYS = [
    ("spectrogram_extractor.stft.conv_real.weight", (257, 1, 512)),
    ("spectrogram_extractor.stft.conv_imag.weight", (257, 1, 512)),
    ("logmel_extractor.melW", (257, 64)),
    ("bn0.weight", (64,)),
    ("bn0.bias", (64,)),
    ("bn0.running_mean", (64,)),
    ("bn0.running_var", (64,)),
    ("bn0.num_batches_tracked", ()),
    ("conv_block1.conv1.weight", (64, 1, 3, 3)),
    ("conv_block1.conv2.weight", (64, 64, 3, 3)),
    ("conv_block1.bn1.weight", (64,)),
    ("conv_block1.bn1.bias", (64,)),
    ("conv_block1.bn1.running_mean", (64,)),
    ("conv_block1.bn1.running_var", (64,)),
    ("conv_block1.bn1.num_batches_tracked", ()),
    ("conv_block1.bn2.weight", (64,)),
    ("conv_block1.bn2.bias", (64,)),
    ("conv_block1.bn2.running_mean", (64,)),
    ("conv_block1.bn2.running_var", (64,)),
    ("conv_block1.bn2.num_batches_tracked", ()),
    ("conv_block2.conv1.weight", (128, 64, 3, 3)),
    ("conv_block2.conv2.weight", (128, 128, 3, 3)),
    ("conv_block2.bn1.weight", (128,)),
    ("conv_block2.bn1.bias", (128,)),
    ("conv_block2.bn1.running_mean", (128,)),
    ("conv_block2.bn1.running_var", (128,)),
    ("conv_block2.bn1.num_batches_tracked", ()),
    ("conv_block2.bn2.weight", (128,)),
    ("conv_block2.bn2.bias", (128,)),
    ("conv_block2.bn2.running_mean", (128,)),
    ("conv_block2.bn2.running_var", (128,)),
    ("conv_block2.bn2.num_batches_tracked", ()),
    ("conv_block3.conv1.weight", (256, 128, 3, 3)),
    ("conv_block3.conv2.weight", (256, 256, 3, 3)),
    ("conv_block3.bn1.weight", (256,)),
    ("conv_block3.bn1.bias", (256,)),
    ("conv_block3.bn1.running_mean", (256,)),
    ("conv_block3.bn1.running_var", (256,)),
    ("conv_block3.bn1.num_batches_tracked", ()),
    ("conv_block3.bn2.weight", (256,)),
    ("conv_block3.bn2.bias", (256,)),
    ("conv_block3.bn2.running_mean", (256,)),
    ("conv_block3.bn2.running_var", (256,)),
    ("conv_block3.bn2.num_batches_tracked", ()),
    ("conv_block4.conv1.weight", (512, 256, 3, 3)),
    ("conv_block4.conv2.weight", (512, 512, 3, 3)),
    ("conv_block4.bn1.weight", (512,)),
    ("conv_block4.bn1.bias", (512,)),
    ("conv_block4.bn1.running_mean", (512,)),
    ("conv_block4.bn1.running_var", (512,)),
    ("conv_block4.bn1.num_batches_tracked", ()),
    ("conv_block4.bn2.weight", (512,)),
    ("conv_block4.bn2.bias", (512,)),
    ("conv_block4.bn2.running_mean", (512,)),
    ("conv_block4.bn2.running_var", (512,)),
    ("conv_block4.bn2.num_batches_tracked", ()),
    ("conv_block5.conv1.weight", (1024, 512, 3, 3)),
    ("conv_block5.conv2.weight", (1024, 1024, 3, 3)),
    ("conv_block5.bn1.weight", (1024,)),
    ("conv_block5.bn1.bias", (1024,)),
    ("conv_block5.bn1.running_mean", (1024,)),
    ("conv_block5.bn1.running_var", (1024,)),
    ("conv_block5.bn1.num_batches_tracked", ()),
    ("conv_block5.bn2.weight", (1024,)),
    ("conv_block5.bn2.bias", (1024,)),
    ("conv_block5.bn2.running_mean", (1024,)),
    ("conv_block5.bn2.running_var", (1024,)),
    ("conv_block5.bn2.num_batches_tracked", ()),
    ("conv_block6.conv1.weight", (2048, 1024, 3, 3)),
    ("conv_block6.conv2.weight", (2048, 2048, 3, 3)),
    ("conv_block6.bn1.weight", (2048,)),
    ("conv_block6.bn1.bias", (2048,)),
    ("conv_block6.bn1.running_mean", (2048,)),
    ("conv_block6.bn1.running_var", (2048,)),
    ("conv_block6.bn1.num_batches_tracked", ()),
    ("conv_block6.bn2.weight", (2048,)),
    ("conv_block6.bn2.bias", (2048,)),
    ("conv_block6.bn2.running_mean", (2048,)),
    ("conv_block6.bn2.running_var", (2048,)),
    ("conv_block6.bn2.num_batches_tracked", ()),
    ("fc1.weight", (2048, 2048)),
    ("fc1.bias", (2048,)),
    ("fc_audioset.weight", (527, 2048)),
    ("fc_audioset.bias", (527,)),
]
# From harritaylor/torchvggish vggish.py (make_layers + VGG.embeddings) —
# vggish-10086976.pth.
OFFICIAL_VGGISH_KEYS = [
    ("features.0.weight", (64, 1, 3, 3)),
    ("features.0.bias", (64,)),
    ("features.3.weight", (128, 64, 3, 3)),
    ("features.3.bias", (128,)),
    ("features.6.weight", (256, 128, 3, 3)),
    ("features.6.bias", (256,)),
    ("features.8.weight", (256, 256, 3, 3)),
    ("features.8.bias", (256,)),
    ("features.11.weight", (512, 256, 3, 3)),
    ("features.11.bias", (512,)),
    ("features.13.weight", (512, 512, 3, 3)),
    ("features.13.bias", (512,)),
    ("embeddings.0.weight", (4096, 12288)),
    ("embeddings.0.bias", (4096,)),
    ("embeddings.2.weight", (4096, 4096)),
    ("embeddings.2.bias", (4096,)),
    ("embeddings.4.weight", (128, 4096)),
    ("embeddings.4.bias", (128,)),
]


def _layout(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def test_official_state_dict_keys_and_shapes():
    with torch.device("meta"):  # the full-size layouts without allocating 150 M weights
        assert _layout(Cnn14()) == OFFICIAL_PANNS_KEYS
        assert _layout(Vggish()) == OFFICIAL_VGGISH_KEYS


def test_saved_then_loaded_models_are_bit_exact(tmp_path):
    torch.manual_seed(0)
    panns, vgg = build_panns("tiny"), build_vggish("tiny")
    # the official PANNs file layout: {"model": state, …, numpy arrays from the sampler}
    ckpt = {"iteration": 7, "model": panns.state_dict(), "sampler": {"indexes": np.arange(9)}}
    torch.save(ckpt, tmp_path / "panns.pth")
    from safetensors.torch import save_file

    save_file(vgg.state_dict(), str(tmp_path / "vggish.safetensors"))
    panns2 = load_panns(tmp_path / "panns.pth", "tiny")
    vgg2 = load_vggish(tmp_path / "vggish.safetensors", "tiny")
    wave = torch.randn(2, 24000, generator=torch.Generator().manual_seed(1)) * 0.3
    with torch.inference_mode():
        a, b = panns(wave), panns2(wave)
        assert a.embedding.shape == (2, 32) and a.logits.shape == (2, 527)
        assert torch.equal(a.embedding, b.embedding) and torch.equal(a.logits, b.logits)
        va, vb = vgg.embed(wave), vgg2.embed(wave)
        assert va.shape == (2, 1, 128) and torch.equal(va, vb)


def test_panns_front_end_matches_torch_stft_and_slaney_mel():
    from maa.dsp import mel_filterbank

    model = build_panns("tiny")
    wave = torch.randn(1, 8000, generator=torch.Generator().manual_seed(2)) * 0.5
    window = torch.hann_window(512)
    spec = torch.stft(wave, 512, 160, window=window, center=True, return_complex=True)
    power = spec.abs().square().transpose(1, 2)
    ours = model.spectrogram_extractor(wave)
    assert ours.shape == power.shape == (1, 51, 257)
    torch.testing.assert_close(ours, power, rtol=1e-4, atol=1e-3)
    mel = mel_filterbank(257, 16000, 64, 50.0, 8000.0)
    expected = 10 * torch.log10(torch.clamp(power @ mel, min=1e-10))
    torch.testing.assert_close(model.logmel_extractor(ours), expected, rtol=1e-4, atol=1e-3)


def test_vggish_front_end_matches_reference_formulas():
    """log(HTK-mel(|rfft(periodic-Hann 400-sample frames, 512)|) + 0.01), 96-frame examples."""
    data = np.random.default_rng(3).uniform(-1, 1, 16000 * 2 + 3000)
    n = 1 + (len(data) - 400) // 160
    frames = np.stack([data[i * 160 : i * 160 + 400] for i in range(n)])
    hann = 0.5 - 0.5 * np.cos(2 * np.pi / 400 * np.arange(400))
    spec = np.abs(np.fft.rfft(frames * hann, 512))
    mel_of = lambda hz: 1127.0 * np.log(1.0 + hz / 700.0)  # noqa: E731
    bins, edges = mel_of(np.linspace(0, 8000, 257)), np.linspace(mel_of(125), mel_of(7500), 66)
    weights = np.stack(
        [
            np.maximum(0, np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)))
            for lo, c, hi in zip(edges[:-2], edges[1:-1], edges[2:], strict=True)
        ],
        axis=1,
    )
    weights[0] = 0
    logmel = np.log(spec @ weights + 0.01)
    expected = logmel[: (n // 96) * 96].reshape(-1, 96, 64)
    ours = build_vggish("tiny").frontend(torch.from_numpy(data)[None])[0]
    assert ours.shape == expected.shape == (2, 96, 64)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_wrong_keys_are_named_and_missing_file_is_explained(tmp_path):
    state = build_panns("tiny").state_dict()
    state["fc.weight"] = state.pop("fc1.weight")
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(MaaError, match=r"missing keys fc1\.weight.*unexpected keys fc\.weight"):
        load_panns(tmp_path / "bad.pth", "tiny")
    with pytest.raises(MaaError, match=r"--embedder panns:.*Cnn14_16k_mAP=0\.438\.pth"):
        load_panns(None)
    with pytest.raises(MaaError, match=r"--vggish .*vggish-10086976\.pth"):
        load_vggish(None)
    with pytest.raises(MaaError, match="no such checkpoint"):
        load_vggish(tmp_path / "nope.pth")


def test_pairing_by_name():
    assert pairing_keys(["a/dog_1.wav", "b/cat.flac"]) == ["dog_1", "cat"]
    # repeated stems fall back to the relative path without suffix
    assert pairing_keys(["x/a.wav", "y/a.wav"]) == ["x/a", "y/a"]
    gen, ref = ["dog", "cat", "cow", "cow"], ["cow", "bird", "dog", "cat"]
    # cow is ambiguous on the generated side, bird has no namesake
    assert pair_by_name(gen, ref) == [(1, 3), (0, 2)]


# -- the stage and the CLI on synthetic folders, with full-size random-weight stand-ins --------
@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Random-weight Cnn14 and VGGish in the official layouts, standing in for the real files."""
    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    torch.save({"model": build_panns().state_dict()}, root / "Cnn14_16k_mAP=0.438.pth")
    torch.save(build_vggish().state_dict(), root / "vggish-10086976.pth")
    return {"panns": root / "Cnn14_16k_mAP=0.438.pth", "vggish": root / "vggish-10086976.pth"}


def _write_set(root: Path, sr: int, seed: int, names=("low", "noise", "sweep", "knock")) -> Path:
    makers = {
        "low": lambda: tone(150 + 10 * seed, 1.0, sr, harmonics=3),
        "noise": lambda: noise(0.5, sr, seed=seed),  # shorter than a VGGish example
        "sweep": lambda: chirp(300, 3000 + 100 * seed, 1.0, sr),
        "knock": lambda: bursts(1.0, sr, seed=seed),
        "extra": lambda: tone(900, 1.0, sr),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_audio(root / f"{name}.wav", makers[name](), sr)
    return root


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sets")
    return {
        "gen": _write_set(root / "gen", 16000, 1),
        "ref": _write_set(root / "ref", 22050, 2, ("low", "noise", "sweep", "knock", "extra")),
        "cache": root / "cache",
    }


def _metric(report: dict, name: str) -> dict:
    return next(m for m in report["metrics"] if m["metric"] == name)


def test_cli_end_to_end_and_cached_rerun(checkpoints, sets, tmp_path):
    from maa.cli.app import app

    out = tmp_path / "report.json"
    args = [
        "evaluate", "--generated", str(sets["gen"]), "--reference", str(sets["ref"]),
        "--embedder", f"panns:{checkpoints['panns']}", "--vggish", str(checkpoints["vggish"]),
        "--metrics", "fd,fad,kl,is", "--cache-dir", str(sets["cache"]), "--batch-size", "3",
        "-o", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "FD" in result.output and "panns-cnn14-16k" in result.output
    report = json.loads(out.read_text())
    assert report["generated"]["n_files"] == 4 and report["reference"]["n_files"] == 5
    assert report["n_paired"] == 4
    assert [m["metric"] for m in report["metrics"]] == [
        "FD", "FAD", "KL_softmax", "KL_sigmoid", "IS",
    ]  # fmt: skip
    for m in report["metrics"]:
        assert math.isfinite(m["value"]), m
        assert m["backbone"] == ("vggish" if m["metric"] == "FAD" else "panns-cnn14-16k")
    assert _metric(report, "FD")["n_generated"] == 4 and _metric(report, "FD")["n_reference"] == 5
    assert _metric(report, "KL_softmax")["n_paired"] == 4
    assert _metric(report, "FAD")["rows_generated"] == 4  # one 0.96 s frame each (noise padded)
    assert report["generated"]["n_padded"] == {"panns-cnn14-16k": 4, "vggish": 1}
    files = pd.read_parquet(tmp_path / "report.files.parquet")
    assert len(files) == 9 and (files["error"] == "").all()
    gen_rows = files[files["set"] == "generated"]
    assert gen_rows["kl_softmax"].notna().all() and (gen_rows["paired_with"] != "").all()
    assert report["versions"]["torch"] == torch.__version__
    assert list(report) == [
        "format", "format_version", "created", "generated", "reference", "n_paired", "metrics",
        "backbones", "cache", "per_file", "notes", "versions",
    ]  # fmt: skip
    assert report["format"] == "maa-eval-report" and report["per_file"] == "report.files.parquet"
    assert set(report["generated"]) == {"source", "n_files", "n_failed", "n_padded", "n_cached"}
    assert set(_metric(report, "FAD")) == {
        "metric", "value", "backbone", "n_generated", "n_reference", "rows_generated",
        "rows_reference", "notes",
    }  # fmt: skip
    assert set(_metric(report, "IS")) == {
        "metric", "value", "backbone", "std", "splits", "n_generated", "notes",
    }  # fmt: skip
    assert set(_metric(report, "KL_sigmoid")) == {
        "metric",
        "value",
        "backbone",
        "n_paired",
        "notes",
    }

    # a re-run reads every feature from the cache and gives identical numbers
    again = evaluate(
        sets["gen"], sets["ref"], "fd,fad,kl,is", f"panns:{checkpoints['panns']}",
        checkpoints["vggish"], None, tmp_path / "again.json", cache_dir=sets["cache"],
    )  # fmt: skip
    assert again.generated.n_cached == {"panns-cnn14-16k": 4, "vggish": 4}
    assert again.to_dict()["metrics"] == report["metrics"]  # same numbers, same JSON entries

    # changing a file's content invalidates exactly its cache entries (never stale)
    write_audio(sets["gen"] / "low.wav", tone(700, 1.0, 16000), 16000)
    changed = evaluate(
        sets["gen"], sets["ref"], "fd,kl", f"panns:{checkpoints['panns']}", None, None,
        tmp_path / "changed.json", cache_dir=sets["cache"],
    )  # fmt: skip
    assert changed.generated.n_cached == {"panns-cnn14-16k": 3}
    assert changed.metric("FD").value != _metric(report, "FD")["value"]


def test_partial_pairs_small_sets_and_unreadable_files(checkpoints, sets, tmp_path):
    gen = tmp_path / "gen"
    _write_set(gen, 16000, 1, ("sweep",))
    (gen / "broken.wav").write_bytes(b"not audio at all")
    report = evaluate(
        gen, sets["ref"], None, f"panns:{checkpoints['panns']}", None, None,
        tmp_path / "r.json", cache_dir=sets["cache"],
    )  # fmt: skip
    fd = report.metric("FD")
    assert fd.value is None and "at least 2" in fd.reason  # said, not a silent -1
    assert report.metric("KL_softmax").n_paired == 1
    assert report.metric("IS").splits == 1 and report.metric("IS").notes
    assert report.metric("FAD").value is None and "--vggish" in report.metric("FAD").reason
    assert report.generated.n_failed == 1
    written = json.loads((tmp_path / "r.json").read_text())
    assert written == json.loads(json.dumps(report.to_dict()))
    assert set(_metric(written, "FD")) == {
        "metric", "value", "backbone", "n_generated", "n_reference", "notes", "reason",
    }  # fmt: skip
    files = pd.read_parquet(tmp_path / "r.files.parquet").set_index("key")
    assert "not a readable audio file" in files.loc["broken", "error"]

    # no namesakes at all: KL is reported as not computable, with the reason
    other = _write_set(tmp_path / "other", 16000, 3, ("extra",))
    (other / "extra.wav").rename(other / "unrelated.wav")
    r2 = evaluate(
        other, sets["ref"], "kl", f"panns:{checkpoints['panns']}", None, None,
        tmp_path / "r2.json", cache_dir=sets["cache"],
    )  # fmt: skip
    kl = r2.metric("KL_softmax")
    assert kl.value is None and kl.n_paired == 0 and "same name" in kl.reason


def test_batches_keep_the_tail_and_equal_single_clip_results(tmp_path):
    from maa.stages.eval_features import (
        FeatureCache,
        PannsBackbone,
        VggishBackbone,
        collect_clips,
        extract_features,
        inspect_files,
    )

    for i in range(5):  # four clips of one length (a batch of 3 and a tail of 1) + one longer
        seconds = 1.5 if i == 4 else 1.0
        write_audio(tmp_path / f"t{i}.wav", tone(200 + 150 * i, seconds, 16000), 16000)
    torch.manual_seed(0)
    tiny_panns, tiny_vggish = build_panns("tiny"), build_vggish("tiny")
    feats = []
    for bs in (3, 1):
        clips = collect_clips(tmp_path, "generated")
        side = inspect_files(clips)
        backbones = [
            PannsBackbone("panns-tiny", 16000, lambda: tiny_panns),
            VggishBackbone("vggish-tiny", 16000, lambda: tiny_vggish),
        ]
        extract_features(clips, side, backbones, FeatureCache(None), torch.device("cpu"), bs)
        feats.append(side.feats)
    batched, single = feats
    assert all(f is not None for f in batched["panns-tiny"] + batched["vggish-tiny"])
    assert [f["frames"].shape[0] for f in batched["vggish-tiny"]] == [1, 1, 1, 1, 1]
    for name in ("panns-tiny", "vggish-tiny"):
        for a, b in zip(batched[name], single[name], strict=True):
            for key in a:
                np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5)


def test_clear_errors_for_bad_input(checkpoints, sets, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MaaError, match="no audio files"):
        evaluate(empty, sets["ref"], "fd", f"panns:{checkpoints['panns']}", out=tmp_path / "x.json")
    with pytest.raises(
        MaaError, match=r"cannot compute fd, kl: .*--embedder panns:.*Cnn14_16k_mAP=0\.438"
    ):
        evaluate(sets["gen"], sets["ref"], "fd,kl", out=tmp_path / "x.json")
    with pytest.raises(MaaError, match="only PANNs"):
        evaluate(sets["gen"], sets["ref"], "is", "clap:" + str(tmp_path), out=tmp_path / "x.json")
    with pytest.raises(MaaError, match="unknown bogus"):
        evaluate(sets["gen"], sets["ref"], "fd,bogus", out=tmp_path / "x.json")
    with pytest.raises(MaaError, match="no such file"):
        evaluate(sets["gen"], sets["ref"], "fd", f"panns:{tmp_path / 'missing.pth'}",
                 out=tmp_path / "x.json")  # fmt: skip
    assert not (tmp_path / "x.json").exists()


def test_clap_score_ranks_matched_captions_above_shuffled(tmp_path):
    """A tiny CLAP trained for 12 steps on synthetic sounds: the CLAP score of clips with their own
    captions beats the same clips with captions rotated to another kind; FD on CLAP works."""
    from maa.manifest import write_manifest
    from maa.stages.clap import train_clap
    from maa.testing import make_clips
    from maa.trainer import TrainConfig

    sr, rows = 22050, []
    kinds = list(make_clips(sr, seconds=1.0, per_kind=3))
    for kind, clips in make_clips(sr, seconds=1.0, per_kind=3).items():
        for i, wave in enumerate(clips):
            rel = f"audio/{kind.replace(' ', '_')}_{i}.wav"
            (tmp_path / "audio").mkdir(exist_ok=True)
            write_audio(tmp_path / rel, wave, sr)
            rows.append((rel, f"the sound of {kind}", 1.0, sr, "synthetic", "train", kind))
    cols = ["audio_path", "caption", "duration", "sample_rate", "source", "split", "kind"]
    df = pd.DataFrame(rows, columns=cols)
    matched = write_manifest(df, tmp_path / "matched.parquet")
    rotated = {k: kinds[(j + 1) % len(kinds)] for j, k in enumerate(kinds)}
    shuffled = df.assign(caption=[f"the sound of {rotated[k]}" for k in df["kind"]])
    shuffled = write_manifest(shuffled, tmp_path / "shuffled.parquet")
    cfg = TrainConfig(max_steps=12, batch_size=8, log_every=10, ckpt_every=1000, progress=False)
    train_clap(matched, tmp_path / "clap", "tiny", cfg)

    cache = tmp_path / "cache"
    good = evaluate(
        matched, matched, "fd,clap", "clap", None, tmp_path / "clap", tmp_path / "good.json",
        cache_dir=cache,
    )  # fmt: skip
    bad = evaluate(
        shuffled, matched, "clap", None, None, tmp_path / "clap", tmp_path / "bad.json",
        cache_dir=cache,
    )  # fmt: skip
    score, worse = good.metric("CLAP"), bad.metric("CLAP")
    assert score.backbone == "clap" and score.n_generated == len(df)
    assert score.value > worse.value + 0.05
    assert bad.generated.n_cached == {"clap": len(df)}  # audio embeddings reused
    fd = good.metric("FD")
    assert fd.backbone == "clap" and fd.value == pytest.approx(0.0, abs=1e-5)
    files = pd.read_parquet(tmp_path / "good.files.parquet")
    assert files.loc[files["set"] == "generated", "clap_score"].notna().all()
    # folders carry no captions: asking for the CLAP score says what to pass
    with pytest.raises(MaaError, match="needs captions"):
        evaluate(tmp_path / "audio", tmp_path / "audio", "clap", None, None, tmp_path / "clap",
                 tmp_path / "x.json", cache_dir=cache)  # fmt: skip
