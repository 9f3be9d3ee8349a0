"""Conditioning on one pooled embedding (issue 19): AudioLDM's CLAP-audio training without
captions, audio prompts, and Make-An-Audio's CLIP image/video-to-audio.

Every model is tiny and random, built from a config and saved as a local folder; tokenizers are
built from small vocabulary files written here. Nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from maa.audio import load_audio, write_audio
from maa.bundle import Bundle
from maa.clap import load_clap
from maa.cli.app import app
from maa.condition import (
    ClapEmbedding,
    image_embedding,
    load_conditioner,
    load_image,
    mix,
    video_embedding,
    video_frames,
)
from maa.data import AudioClips
from maa.errors import MaaError
from maa.generate import Generator, SamplingSettings
from maa.mel import get_mel_preset
from maa.models.clap import Clap, get_clap_config
from maa.models.unet import UNetConfig, build_unet, get_unet_config, takes_class_labels
from maa.models.vae import VAE_PRESETS, build_vae
from maa.stages.generate import generate
from maa.stages.ldm import train_ldm
from maa.stages.ldm_data import (
    LatentDataset,
    LDMConfig,
    build_cache,
    cond_windows,
    fingerprint,
    nearest_window,
)
from maa.stages.x_to_audio import check_inputs
from maa.testing import chirp, noise, tone
from maa.text import load_text_encoder
from maa.trainer import TrainConfig

MEL = get_mel_preset("default")
SR = MEL.sample_rate
LETTERS = "abcdefghijklmnopqrstuvwxyz"
FAST = ["--steps", "2", "--duration", "0.5", "--seed", "0", "--vocoder", "griffin-lim"]


# -- tiny models saved as local folders -----------------------------------------------------------
def _bpe_files(folder: Path, tokens: list[str], merges: list[str]) -> None:
    """A BPE tokenizer's vocab.json + merges.txt: ``tokens`` and the result of every merge."""
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    for m in merges:
        vocab.setdefault(m.replace(" ", ""), len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def _hf_clap(folder: Path) -> Path:
    """A tiny random transformers ClapModel with its processor (RoBERTa BPE tokenizer)."""
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizer,
    )

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    _bpe_files(folder, [*specials, *LETTERS, "Ġ"], ["Ġ d", "o g", "Ġd og", "r a", "Ġ ra"])
    tok = RobertaTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                           model_max_length=40)  # fmt: skip
    torch.manual_seed(0)
    cfg = ClapConfig(
        text_config={"vocab_size": 128, "hidden_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "intermediate_size": 64,
                     "max_position_embeddings": 42, "type_vocab_size": 1, "pad_token_id": 1},
        audio_config={"depths": [1, 1], "num_attention_heads": [1, 1], "hidden_size": 32,
                      "patch_embeds_hidden_size": 16, "num_mel_bins": 16, "spec_size": 64,
                      "patch_size": 4, "window_size": 4},
        projection_dim=16,
    )  # fmt: skip
    ClapModel(cfg).save_pretrained(folder)
    fe = ClapFeatureExtractor(feature_size=16, sampling_rate=16000, hop_length=160,
                              max_length_s=1, fft_window_size=400, frequency_max=8000)  # fmt: skip
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(folder)
    return folder


def _hf_clip(folder: Path) -> Path:
    """A tiny random transformers CLIPModel with its tokenizer and image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    letters = [*LETTERS, *(c + "</w>" for c in LETTERS)]
    _bpe_files(folder, ["<|startoftext|>", "<|endoftext|>", *letters],
               ["d o", "do g</w>", "r a", "ra i", "rai n</w>"])  # fmt: skip
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config={"vocab_size": 128, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(cfg).save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return folder


def _maa_clap(folder: Path, embed_dim: int = 32) -> Path:
    torch.manual_seed(1)
    cfg = replace(get_clap_config("tiny"), embed_dim=embed_dim)
    Bundle.create(folder, MEL).save_module("clap", Clap(cfg), "clap", cfg.to_dict())
    return folder


def _video(path: Path, frames: int, fps: int = 4, fmt: str | None = None) -> Path:
    import av

    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        c.start_encoding()
        for i in range(frames):
            img = np.zeros((32, 32, 3), np.uint8)
            img[..., i % 3] = (40 + 25 * i) % 256
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def _image(path: Path, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "hf_clap": _hf_clap(root / "hf_clap"),
        "clip": _hf_clip(root / "clip"),
        "clap": _maa_clap(root / "clap"),
        "clap24": _maa_clap(root / "clap24", embed_dim=24),
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny-VAE bundle, a manifest WITHOUT a caption column (and an event manifest without
    one), a captioned manifest, and example inputs."""
    root = tmp_path_factory.mktemp("cond")
    torch.manual_seed(0)
    vae_cfg = VAE_PRESETS["tiny"]
    Bundle.create(root / "base", MEL).save_module(
        "vae", build_vae(vae_cfg), "vae", vae_cfg.to_dict()
    )
    items = [(f"high_{i}.wav", "a high tone", "tone", tone(1500 + 60 * i, 1.0, SR))
             for i in range(4)]  # fmt: skip
    items += [(f"low_{i}.wav", "low noise", "noise", noise(1.0, SR, seed=i, lowpass=True))
              for i in range(4)]  # fmt: skip
    items.append(("long.wav", "a rising chirp", "chirp", chirp(200, 3000, 2.5, SR)))
    rows = []
    for name, caption, cat, wave in items:
        write_audio(root / name, wave, SR)
        rows.append({"audio_path": name, "caption": caption, "duration": wave.numel() / SR,
                     "sample_rate": SR, "source": "synthetic", "split": "train",
                     "category": cat})  # fmt: skip
    df = pd.DataFrame(rows)
    df.to_parquet(root / "captioned.parquet")
    df.drop(columns="caption").to_parquet(root / "uncaptioned.parquet")
    df.drop(columns="caption").iloc[:3].to_parquet(root / "events.parquet")
    write_audio(root / "prompt.wav", tone(900, 1.2, SR, harmonics=3), SR)
    _image(root / "picture.png")
    return root


def _cfg(steps: int) -> TrainConfig:
    return TrainConfig(max_steps=steps, batch_size=4, log_every=1, ckpt_every=100, device="cpu",
                       progress=False, ema_decay=None)  # fmt: skip


def _bundle(data: Path, dest: Path) -> Path:
    shutil.copytree(data / "base", dest)
    return dest


def _run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def audio_bundle(data, models, tmp_path_factory):
    """Trained by the CLI on the uncaptioned manifest, with uncaptioned reprogramming events."""
    out = _bundle(data, tmp_path_factory.mktemp("audio") / "b")
    res = _run("train-ldm", "--manifest", data / "uncaptioned.parquet", "--bundle", out,
               "--condition", "clap-audio", "--clap", models["clap"], "--max-steps", "3",
               "--batch-size", "4", "--crop-seconds", "0.5", "--ema", "0", "--device", "cpu",
               "--reprogram", data / "events.parquet", "--reprogram-prob", "0.5")  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def clip_bundle(data, models, tmp_path_factory):
    out = _bundle(data, tmp_path_factory.mktemp("clip") / "b")
    train_ldm(data / "captioned.parquet", out, train_cfg=_cfg(2), crop_seconds=0.5,
              text_encoder=f"clip:{models['clip']}")  # fmt: skip
    return out


def _gen(bundle: Path) -> Generator:
    return Generator.from_bundle(bundle, device="cpu", dtype="fp32", vocoder="griffin-lim")


SETTINGS = SamplingSettings(duration=0.5, steps=2, seed=0)


# -- encoders ------------------------------------------------------------------------------------
def test_class_embedding_unet_config():
    cfg = get_unet_config("tiny").with_class_width(12)
    unet = build_unet(cfg)
    assert takes_class_labels(unet) and unet.config.projection_class_embeddings_input_dim == 12
    x = torch.randn(2, 4, 10, 6)
    out = unet(x, torch.tensor([3, 700]), encoder_hidden_states=None,
               class_labels=torch.randn(2, 12)).sample  # fmt: skip
    assert out.shape == x.shape
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    old = {k: v for k, v in get_unet_config("tiny").with_text_width(8).to_dict().items()
           if k != "class_embed_dim"}  # fmt: skip
    assert UNetConfig.from_dict(old).class_embed_dim == 0  # bundles from before still load


@pytest.mark.parametrize("which", ["clap", "hf_clap"])
def test_clap_embedding_encoder(models, which):
    enc = load_conditioner(f"clap-embed:{models[which]}")
    clap = load_clap(models[which])
    assert isinstance(enc, ClapEmbedding) and enc.pooled_only and enc.width == clap.embed_dim
    out = enc.encode(["a dog", "rain", ""])
    d = enc.width
    assert out.tokens.shape == (3, 1, d) and out.mask.shape == (3, 1) and out.pooled.shape == (3, d)
    torch.testing.assert_close(out.pooled.norm(dim=-1), torch.ones(3))
    assert torch.equal(out.pooled, clap.embed_text(["a dog", "rain", ""]))
    assert torch.equal(out.tokens[:, 0], out.pooled)
    waves = [tone(440, 0.7, SR), noise(1.6, SR)]
    a = enc.embed_audio(waves, SR)
    assert a.shape == (2, d) and torch.equal(a, clap.embed_audio(waves, SR))
    assert torch.equal(a, enc.embed_audio(waves, SR))  # deterministic
    ref, cfg = enc.reference()
    assert ref == f"path:{Path(models[which]).resolve()}" and cfg["width"] == d
    assert cfg["spec"] == enc.spec and len(cfg["digest"]) == 16


def test_shipped_clap_is_recorded_by_name():
    enc = load_conditioner("clap-embed:default")
    assert enc.spec == "clap-embed:default" and enc.reference()[0] == "package:maa"


def test_clip_text_and_image_embeddings(models, data, tmp_path):
    from transformers import CLIPModel

    enc = load_text_encoder(f"clip:{models['clip']}")
    assert enc.pooled_only and enc.width == 16 and enc.kind == "clip"
    out = enc.encode(["a dog", "rain", ""])
    assert out.tokens.shape == (3, 1, 16) and out.mask.tolist() == [[1], [1], [1]]
    torch.testing.assert_close(out.pooled.norm(dim=-1), torch.ones(3))
    model = CLIPModel.from_pretrained(str(models["clip"]))
    ids = enc.tokenizer(["a dog"], return_tensors="pt")
    want = model.text_projection(model.text_model(**ids).pooler_output)
    torch.testing.assert_close(out.pooled[:1], torch.nn.functional.normalize(want, dim=-1))
    images = [load_image(data / "picture.png"), load_image(_image(tmp_path / "b.png", 1))]
    emb = image_embedding(enc, images)
    assert emb.shape == (2, 16) and torch.equal(emb, image_embedding(enc, images))
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(2))
    assert not torch.allclose(emb[0], emb[1])
    mean = video_embedding(enc, images)
    torch.testing.assert_close(mean, torch.nn.functional.normalize(emb.mean(0), dim=-1))


def test_video_frames_are_sampled_at_the_rate(tmp_path):
    pytest.importorskip("av")
    path = _video(tmp_path / "v.mp4", frames=8, fps=4)  # 2 s
    frames, seconds = video_frames(path, 1.0)
    assert len(frames) == 2 and seconds == pytest.approx(2.0)
    assert frames[0].size == (32, 32) and frames[0].mode == "RGB"
    assert len(video_frames(path, 4.0)[0]) == 8 and len(video_frames(path, 0.3)[0]) == 1


# -- training ------------------------------------------------------------------------------------
def test_clap_audio_cache_windows_and_dropout(data, models):
    df = pd.read_parquet(data / "uncaptioned.parquet").assign(caption="")
    df.attrs["manifest_root"] = str(data)
    clips = AudioClips(df, SR)
    enc = ClapEmbedding.load(models["clap"])
    vae = build_vae(VAE_PRESETS["tiny"]).eval()
    cfg = LDMConfig(crop_frames=48, condition="clap-audio", caption_dropout=0.5)
    vae_file = data / "base" / "vae.safetensors"
    fp = fingerprint(vae_file, enc, MEL, clips, cfg)
    assert fp == fingerprint(vae_file, enc, MEL, clips, cfg)
    assert fp != fingerprint(vae_file, enc, MEL, clips, replace(cfg, condition="text"))
    cache = build_cache(clips, vae, enc, MEL, cfg, fp, torch.device("cpu"))
    crop = 48 // 8
    assert cache.cond_stride == 1 and cache.captions == []
    for mean, cond in zip(cache.mean, cache.audio_cond, strict=True):
        assert cond.shape == (len(cond_windows(mean.shape[-1], crop, 1)), enc.width)
    # the long clip's window at latent offset 5: the CLAP embedding of that stretch of audio
    long = clips.paths.index(str(data / "long.wav"))
    start = 5 * 8 * MEL.hop_length
    wave = clips.waves[long][start : start + MEL.samples_for(48)]
    torch.testing.assert_close(cache.audio_cond[long][5].float(),
                               enc.embed_audio([wave], SR)[0], atol=2e-3, rtol=0)  # fmt: skip
    # the unconditional (a dropped item) is the CLAP text embedding of "", as at generation
    torch.testing.assert_close(cache.uncond.float(), enc.encode([""]).pooled, atol=2e-3, rtol=0)
    ds = LatentDataset(cache, clips, cfg, MEL, 0, 1000)
    items = [ds[i] for i in range(len(clips))]
    dropped = [torch.equal(it["tokens"], cache.uncond) for it in items]
    assert 0 < sum(dropped) < len(items)
    for i, (it, drop) in enumerate(zip(items, dropped, strict=True)):
        assert it["tokens"].shape == (1, enc.width)
        if not drop:
            assert any(torch.equal(it["tokens"][0], row) for row in cache.audio_cond[i])
    assert torch.equal(ds[2]["tokens"], items[2]["tokens"])  # deterministic per epoch


def test_nearest_window():
    assert cond_windows(11, 6, 1) == [0, 1, 2, 3, 4, 5]
    assert cond_windows(20, 8, 2) == [0, 2, 4, 6, 8, 10, 12]
    assert cond_windows(13, 8, 2) == [0, 2, 4, 5]
    assert cond_windows(6, 8, 2) == [0]
    assert [nearest_window(o, 13, 8, 2) for o in range(6)] == [
        0,
        0,
        1,
        1,
        2,
        3,
    ]  # ties: the earlier


def test_uncaptioned_bundle_records_its_conditioning(audio_bundle, models):
    meta = Bundle.open(audio_bundle).components
    assert meta["unet"]["condition"] == "clap-audio"
    assert meta["unet"]["config"]["class_embed_dim"] == 32
    te = meta["text_encoder"]["config"]
    assert te["spec"] == f"clap-embed:{Path(models['clap']).resolve()}" and te["width"] == 32
    assert meta["unet"]["categories"]["tone"]["captions"] == ["tone"]  # no captions: its name


def test_uncaptioned_bundle_generates_from_text_cli(audio_bundle, tmp_path):
    out = tmp_path / "dog.wav"
    res = _run("generate", "a dog", "-o", out, "--bundle", audio_bundle, *FAST)
    assert res.exit_code == 0, res.output
    wave, sr = sf.read(out)
    assert sr == SR and len(wave) == round(0.5 * SR) and np.abs(wave).max() > 0
    again = tmp_path / "again.wav"
    assert _run("generate", "a dog", "-o", again, "--bundle", audio_bundle, *FAST).exit_code == 0
    assert np.array_equal(sf.read(again)[0], wave)  # seeded: the same clip


def test_a_hugging_face_clap_conditions_too(data, models, tmp_path):
    out = _bundle(data, tmp_path / "b")
    train_ldm(data / "uncaptioned.parquet", out, train_cfg=_cfg(1), crop_seconds=0.5,
              condition="clap-audio", clap=models["hf_clap"])  # fmt: skip
    gen = _gen(out)
    assert isinstance(gen.text_encoder, ClapEmbedding) and gen.text_encoder.width == 16
    [t] = gen.sample(["a dog"], SETTINGS)
    x = check_inputs(out, SETTINGS, text_given=False, batch=False, audio_prompt=data / "prompt.wav")
    [a] = x.condition(gen, None).sample([x.label], SETTINGS)
    assert t.wave.shape == a.wave.shape == (round(0.5 * SR),)
    assert not torch.allclose(a.wave, t.wave, atol=1e-3)


def test_audio_prompt_conditions_on_its_clap_audio_embedding(audio_bundle, data, models, tmp_path):
    gen = _gen(audio_bundle)
    prompt = data / "prompt.wav"
    x = check_inputs(audio_bundle, SETTINGS, text_given=False, batch=False, audio_prompt=prompt)
    [a] = x.condition(gen, None).sample([x.label], SETTINGS)
    # the same vector computed by another CLAP instance, passed as an explicit embedding
    wave, sr = load_audio(prompt)
    emb = load_clap(models["clap"]).embed_audio([wave], sr)[0]
    [b] = gen.conditioned({"my sound": emb}).sample(["my sound"], SETTINGS)
    assert torch.equal(a.wave, b.wave)
    [t] = gen.sample([x.label], SETTINGS)  # the label's text embedding: another clip
    assert not torch.allclose(a.wave, t.wave, atol=1e-3)
    # the CLI writes the same clip
    out = tmp_path / "var.wav"
    res = _run("generate", "--audio-prompt", prompt, "-o", out, "--bundle", audio_bundle, *FAST)
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(sf.read(out)[0], a.wave.numpy(), atol=1 / 16000)
    # a weighted mix with a text prompt: weight 1 is the sound, weight 0 the text
    t_emb = gen.text_encoder.encode(["a dog"]).pooled[0]
    mixes = {}
    for w in (0.0, 0.4, 1.0):
        xw = check_inputs(audio_bundle, SETTINGS, text_given=True, batch=False,
                          audio_prompt=prompt, audio_prompt_weight=w)  # fmt: skip
        view = xw.condition(gen, ["a dog"])
        want = torch.nn.functional.normalize(w * emb + (1 - w) * t_emb, dim=0)
        torch.testing.assert_close(view.text_encoder.encode(["a dog"]).pooled[0], want)
        [mixes[w]] = view.sample(["a dog"], SETTINGS)
    torch.testing.assert_close(mix(emb, t_emb, 1.0), emb)
    torch.testing.assert_close(mix(emb, t_emb, 0.0), t_emb)
    [text] = gen.sample(["a dog"], SETTINGS)
    assert not torch.allclose(mixes[0.4].wave, text.wave, atol=1e-2)
    assert not torch.allclose(mixes[0.4].wave, a.wave, atol=1e-2)
    res = _run("generate", "a dog", "--audio-prompt", prompt, "--audio-prompt-weight", "0.4",
               "-o", tmp_path / "mix.wav", "--bundle", audio_bundle, *FAST)  # fmt: skip
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(sf.read(tmp_path / "mix.wav")[0], mixes[0.4].wave.numpy(),
                               atol=1 / 16000)  # fmt: skip


def test_image_and_video_prompts_use_the_clip_image_embedding(clip_bundle, data, models, tmp_path):
    meta = Bundle.open(clip_bundle).components
    assert meta["unet"]["config"]["class_embed_dim"] == 16 and "condition" not in meta["unet"]
    assert meta["text_encoder"]["config"]["spec"] == f"clip:{Path(models['clip']).resolve()}"
    gen = _gen(clip_bundle)
    picture = data / "picture.png"
    x = check_inputs(clip_bundle, SETTINGS, text_given=False, batch=False, image=picture)
    [a] = x.condition(gen, None).sample([x.label], SETTINGS)
    clip = load_text_encoder(f"clip:{models['clip']}")
    emb = image_embedding(clip, [load_image(picture)])[0]
    [b] = gen.conditioned({"e": emb}).sample(["e"], SETTINGS)
    assert torch.equal(a.wave, b.wave)
    [t] = gen.sample([x.label], SETTINGS)
    assert not torch.allclose(a.wave, t.wave, atol=1e-3)
    res = _run("generate", "--image", picture, "-o", tmp_path / "img.wav", "--bundle",
               clip_bundle, *FAST)  # fmt: skip
    assert res.exit_code == 0, res.output
    np.testing.assert_allclose(sf.read(tmp_path / "img.wav")[0], a.wave.numpy(), atol=1 / 16000)
    pytest.importorskip("av")
    video = _video(tmp_path / "v.mp4", frames=4, fps=8)  # 0.5 s
    kw = {"bundle": clip_bundle, "vocoder": "griffin-lim", "device": "cpu"}
    df = generate(replace(SETTINGS, duration=3.0), output=tmp_path / "v.wav", video=video,
                  video_fps=4.0, **kw)  # fmt: skip
    assert df.iloc[0]["duration"] == pytest.approx(0.5, abs=1e-3)  # the video's length
    assert df.iloc[0]["video_fps"] == 4.0
    frames, _ = video_frames(video, 4.0)
    assert len(frames) == 2
    [v] = gen.conditioned({"v": video_embedding(clip, frames)}).sample(["v"], SETTINGS)
    np.testing.assert_allclose(sf.read(tmp_path / "v.wav")[0], v.wave.numpy(), atol=1 / 16000)
    longer = _video(tmp_path / "long.mp4", frames=12, fps=8)  # 1.5 s
    assert generate(SETTINGS, output=tmp_path / "l.wav", video=longer, **kw).iloc[0][
        "duration"
    ] == pytest.approx(1.5, abs=1e-3)
    given = generate(SETTINGS, output=tmp_path / "g.wav", video=longer, duration_from_video=False,
                     **kw)  # fmt: skip
    assert given.iloc[0]["duration"] == pytest.approx(0.5, abs=1e-3)  # --duration wins


# -- bad input -----------------------------------------------------------------------------------
def _error(res, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert text.startswith("error:") and "Traceback" not in text, res.output
    for needle in needles:
        assert needle in text, (needle, res.output)


def test_bad_inputs(audio_bundle, clip_bundle, data, models, tmp_path):
    out = ["-o", tmp_path / "x.wav", *FAST]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a picture")
    _error(_run("generate", "--image", bad, "--bundle", clip_bundle, *out),
           f"--image {bad}: cannot be decoded as an image")  # fmt: skip
    _error(_run("generate", "--image", data / "picture.png", "--bundle", audio_bundle, *out),
           "--image needs a bundle trained on a CLIP text encoder", "clip:DIR",
           f"clap-embed:{Path(models['clap']).resolve()}")  # fmt: skip
    _error(_run("generate", "--audio-prompt", data / "prompt.wav", "--bundle", clip_bundle, *out),
           "--audio-prompt needs a bundle trained on CLAP audio embeddings",
           "--condition clap-audio")  # fmt: skip
    _error(_run("generate", "a dog", "--image", data / "picture.png", "--bundle", clip_bundle,
                *out), "--image stands alone")  # fmt: skip
    _error(
        _run(
            "generate",
            "--audio-prompt",
            data / "prompt.wav",
            "--audio-prompt-weight",
            "0.5",
            "--bundle",
            audio_bundle,
            *out,
        ),
        "weighs the audio prompt against a text PROMPT",
    )
    # a CLAP whose width does not match the U-Net's class embedding
    moved = tmp_path / "moved"
    shutil.copytree(audio_bundle, moved, ignore=shutil.ignore_patterns("train"))
    meta = json.loads((moved / "bundle.json").read_text())
    meta["components"]["text_encoder"]["config"]["spec"] = f"clap-embed:{models['clap24']}"
    (moved / "bundle.json").write_text(json.dumps(meta))
    _error(_run("generate", "a dog", "--bundle", moved, *out),
           "this CLAP gives 24-d embeddings", "trained on 32-d CLAP embeddings")  # fmt: skip
    with pytest.raises(MaaError, match="takes 32-d vectors"):
        _gen(audio_bundle).conditioned({"x": torch.ones(24)})
    # a text-conditioned training run on a manifest without captions
    with pytest.raises(MaaError, match=r"no 'caption' column.*--condition clap-audio"):
        train_ldm(data / "uncaptioned.parquet", _bundle(data, tmp_path / "t"), train_cfg=_cfg(1))
    with pytest.raises(MaaError, match="--condition 'image' is not one of text, clap-audio"):
        train_ldm(data / "captioned.parquet", tmp_path / "t", condition="image")


def test_bad_videos(clip_bundle, tmp_path, monkeypatch):
    out = ["-o", tmp_path / "x.wav", "--bundle", clip_bundle, *FAST]
    monkeypatch.setitem(sys.modules, "av", None)  # the optional extra is not installed
    _error(_run("generate", "--video", tmp_path / "any.mp4", *out),
           "--video needs the optional video decoder PyAV: pip install 'maa[video]'")  # fmt: skip
    monkeypatch.undo()
    pytest.importorskip("av")
    empty = _video(tmp_path / "empty.avi", frames=0, fmt="avi")
    _error(_run("generate", "--video", empty, *out), "the video has no frames")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00garbage" * 64)
    _error(_run("generate", "--video", junk, *out), "cannot be decoded as a video")
