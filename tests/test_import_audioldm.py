"""``maa import audioldm``: a diffusers AudioLDM folder of tiny random components (laid out by
``AudioLDMPipeline.save_pretrained``, as AudioLDM's configs have them) becomes a bundle whose
every tensor maps, that generates what ``AudioLDMPipeline`` generates for the same initial
latents, and that ``maa generate``, ``maa vocode`` and ``maa evaluate`` use unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from maa.clap import find_default_clap
from maa.cli.app import app
from maa.errors import MaaError
from maa.generate import Generator, SamplingSettings
from maa.importers.audioldm import import_audioldm
from maa.testing import tone

PROMPT = "a dog barks"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
# a byte-level BPE vocabulary small enough to write here: AudioLDM's RoBERTa tokenizer in kind
MERGES = ["o g", "Ġ d", "Ġd og", "a r", "b ar", "Ġ bar", "Ġbar k", "Ġbark s"]


def _tokenizer():
    from transformers import RobertaTokenizer

    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])}
    for token in [*LETTERS, "Ġ", *(m.replace(" ", "") for m in MERGES)]:
        vocab.setdefault(token, len(vocab))
    return RobertaTokenizer(vocab=vocab, merges=[tuple(m.split()) for m in MERGES],
                            model_max_length=77)  # fmt: skip


def _pipeline():
    """AudioLDM's components at toy width: U-Net conditioned through a simple-projection class
    embedding (cross-attention blocks without a context), a ×4 VAE on (T, 64) mel images, a CLAP
    text tower with projection, a 16 kHz SpeechT5 HiFi-GAN with hop 160 and AudioLDM's DDIM."""
    from diffusers import AudioLDMPipeline, AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import (
        ClapTextConfig,
        ClapTextModelWithProjection,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    torch.manual_seed(0)
    tokenizer = _tokenizer()
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8, in_channels=8,
        out_channels=8, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=(8, 16),
        attention_head_dim=4, class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=12, class_embeddings_concat=True, sample_size=32,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=1, out_channels=1, block_out_channels=(8, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=8, norm_num_groups=8, scaling_factor=0.9227914,
    )  # fmt: skip
    text = ClapTextModelWithProjection(ClapTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=24, num_hidden_layers=1,
        num_attention_heads=2, projection_dim=12, pad_token_id=1, bos_token_id=0, eos_token_id=2,
    ))  # fmt: skip
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=64, sampling_rate=16000, upsample_initial_channel=16,
        upsample_rates=[5, 4, 8], upsample_kernel_sizes=[10, 8, 16], resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]], normalize_before=False, initializer_range=0.1,
    ))  # fmt: skip
    scheduler = DDIMScheduler(
        beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )  # fmt: skip
    pipe = AudioLDMPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                            scheduler=scheduler, vocoder=vocoder)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audioldm") / "audioldm-tiny"
    _pipeline().save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def pipe(source):
    from diffusers import AudioLDMPipeline

    pipe = AudioLDMPipeline.from_pretrained(source)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def bundle(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "bundle"
    summary = import_audioldm(source, out)
    assert summary.out == out and summary.filled == []
    return out


@pytest.fixture(scope="module")
def gen(bundle) -> Generator:
    return Generator.from_bundle(bundle, device="cpu", dtype="fp32")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_every_key_maps_both_ways(source, bundle):
    pairs = {  # component: (source file, bundle file, key prefix in the bundle)
        "unet": ("unet/diffusion_pytorch_model.safetensors", "unet.safetensors", ""),
        "vae": ("vae/diffusion_pytorch_model.safetensors", "vae.safetensors", "model."),
        "text_encoder": ("text_encoder/model.safetensors", "text_encoder/model.safetensors", ""),
        "vocoder": ("vocoder/model.safetensors", "vocoder.safetensors", ""),
    }
    for name, (src_file, out_file, prefix) in pairs.items():
        ours, theirs = _tensors(bundle / out_file), _tensors(source / src_file)
        assert set(ours) == {prefix + k for k in theirs}, name
        assert all(torch.equal(ours[prefix + k], v) for k, v in theirs.items()), name
    meta = json.loads((bundle / "bundle.json").read_text())
    assert meta["mel"]["name"] == "audioldm" and meta["mel"]["hop_length"] == 160
    comps = meta["components"]
    assert (
        comps["unet"]["kind"] == "diffusers-unet" and comps["vocoder"]["kind"] == "speecht5-hifigan"
    )
    assert comps["unet"]["scale_factor"] == pytest.approx(0.9227914)
    assert comps["unet"]["schedule"]["beta_start"] == 0.0015
    assert comps["vae"]["config"]["time_major"] is True
    assert comps["text_encoder"]["ref"] == "path:text_encoder"  # inside the bundle


@pytest.mark.parametrize(
    ("duration", "steps", "guidance", "negative"),
    [(1.0, 4, 2.5, None), (0.64, 3, 3.0, "rain"), (0.96, 2, 1.0, None)],
)
def test_generator_matches_audioldm_pipeline(gen, pipe, duration, steps, guidance, negative):
    seed = 11
    shape = (1, *gen.latent_shape(duration))
    assert shape[2:] == (round(duration * 100 / 4), 16)  # time-major: (z, T/4, 64/4)
    # the documented noise: torch.randn on a CPU generator seeded with the seed
    latents = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
    ref = pipe(PROMPT, audio_length_in_s=duration, num_inference_steps=steps,
               guidance_scale=guidance, negative_prompt=negative, latents=latents.clone(),
               output_type="pt").audios[0]  # fmt: skip
    settings = SamplingSettings(duration=duration, steps=steps, guidance=guidance, sampler="ddim",
                                seed=seed, negative_prompt=negative, normalize=False)  # fmt: skip
    [clip] = gen.sample([PROMPT], settings)
    assert clip.sr == 16000 and clip.wave.shape == ref.shape
    assert float(ref.abs().max()) > 1e-3  # a real signal, not numerical dust
    assert _rel(clip.wave, ref) <= 1e-4
    # the Python API: encode prompts, pass initial latents, decode
    cond, uncond = gen.encode_prompts([PROMPT], negative)
    z = gen.sample_latents(latents, cond, uncond if guidance != 1 else None, guidance, steps,
                           "ddim")  # fmt: skip
    _, wave = gen.decode(z)
    assert _rel(wave[0, : ref.numel()], ref) <= 1e-4


def test_seed_reproduces_the_pipeline_with_a_cpu_generator(gen, pipe):
    seed = 3
    noise = torch.Generator("cpu").manual_seed(seed)
    ref = pipe(PROMPT, audio_length_in_s=0.64, num_inference_steps=2, guidance_scale=2.5,
               generator=noise, output_type="pt").audios[0]  # fmt: skip
    settings = SamplingSettings(duration=0.64, steps=2, guidance=2.5, sampler="ddim", seed=seed,
                                normalize=False)  # fmt: skip
    assert _rel(gen.sample([PROMPT], settings)[0].wave, ref) <= 1e-4


def test_the_prompt_conditions_through_the_class_embedding(gen):
    settings = SamplingSettings(duration=0.64, steps=2, guidance=3.0, sampler="ddim", seed=0,
                                normalize=False)  # fmt: skip
    [a], [b] = gen.sample([PROMPT], settings), gen.sample(["bark"], settings)  # same seed
    assert gen.class_conditioned
    assert _rel(a.wave, b.wave) > 1e-3


def test_cli_import_generate_vocode_evaluate(source, tmp_path):
    runner = CliRunner()
    out = tmp_path / "bundle"
    res = runner.invoke(app, ["import", "audioldm", str(source), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "unet: " in res.output and "vocoder: " in res.output
    base = ["--bundle", str(out), "--steps", "2", "--device", "cpu", "--dtype", "fp32"]
    wav = tmp_path / "one.wav"
    res = runner.invoke(app, ["generate", PROMPT, "-o", str(wav), "--duration", "0.7",
                              "--sampler", "ddim", "--no-normalize", *base])  # fmt: skip
    assert res.exit_code == 0, res.output
    info = sf.info(str(wav))
    assert info.samplerate == 16000 and info.frames == round(0.7 * 16000)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a dog barks\nbark\ndog\n")
    gen_dir = tmp_path / "gen"
    res = runner.invoke(app, ["generate", "--prompts", str(prompts), "--out-dir", str(gen_dir),
                              "--duration", "1.0", *base])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(list(gen_dir.glob("*.wav"))) == 3
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    for i, f in enumerate((220.0, 440.0, 880.0)):
        sf.write(ref_dir / f"ref{i}.wav", tone(f, 1.0, 16000).numpy(), 16000)
    res = runner.invoke(app, ["vocode", str(ref_dir / "ref0.wav"), "-o", str(tmp_path / "v.wav"),
                              "--vocoder", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert sf.info(str(tmp_path / "v.wav")).samplerate == 16000
    clap = find_default_clap()
    report = tmp_path / "report.json"
    res = runner.invoke(app, ["evaluate", "-g", str(gen_dir / "generated.parquet"), "-r",
                              str(ref_dir), "--metrics", "fd,clap", "--embedder", f"clap:{clap}",
                              "--clap", str(clap), "--device", "cpu", "--no-cache",
                              "-o", str(report)])  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = {m["metric"]: m for m in json.loads(report.read_text())["metrics"]}
    assert metrics["FD"]["value"] is not None and metrics["CLAP"]["value"] is not None


# -- bad input ------------------------------------------------------------------------------
def _copy(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / "copy"))


def _fails(src: Path, out: Path, *needles: str) -> None:
    with pytest.raises(MaaError) as info:
        import_audioldm(src, out)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    assert not out.exists() or not any(out.iterdir())
    assert not list(out.parent.glob(f".{out.name}.importing-*"))  # nothing half-written


def test_missing_component_is_named(source, tmp_path):
    src = _copy(source, tmp_path)
    shutil.rmtree(src / "vocoder")
    _fails(src, tmp_path / "out", "no vocoder/", "copy the complete folder")
    res = CliRunner().invoke(app, ["import", "audioldm", str(src), "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and "vocoder/" in res.output


def test_wrong_kinds_of_folders(source, tmp_path, bundle):
    out = tmp_path / "out"
    _fails(tmp_path / "nope", out, "does not exist")
    (tmp_path / "file.bin").write_bytes(b"x")
    _fails(tmp_path / "file.bin", out, "is a file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("{}")
    _fails(tmp_path / "other", out, "not a diffusers AudioLDM folder")
    _fails(bundle, out, "already a maa bundle")
    (tmp_path / "models--cvssp--audioldm" / "snapshots" / "abc123").mkdir(parents=True)
    _fails(tmp_path / "models--cvssp--audioldm", out, "Hugging Face cache entry", "abc123")
    src = _copy(source, tmp_path)
    index = json.loads((src / "model_index.json").read_text())
    (src / "model_index.json").write_text(json.dumps({**index, "_class_name": "AudioLDM2Pipeline"}))
    _fails(src, out, "AudioLDM2Pipeline")
    (src / "model_index.json").write_text(json.dumps(index))
    cfg = json.loads((src / "text_encoder" / "config.json").read_text())
    (src / "text_encoder" / "config.json").write_text(json.dumps({**cfg, "model_type": "t5"}))
    _fails(src, out, "text_encoder/ holds a 't5'", "clap_text_model")


def test_bad_weights_and_variants_are_refused(source, tmp_path):
    out = tmp_path / "out"
    src = _copy(source, tmp_path)
    weights = src / "unet" / "diffusion_pytorch_model.safetensors"
    state = _tensors(weights)
    dropped = sorted(state)[0]
    save_file({k: v for k, v in state.items() if k != dropped}, str(weights))
    _fails(src, out, "missing keys", dropped)
    save_file(state, str(weights))
    voc = json.loads((src / "vocoder" / "config.json").read_text())
    (src / "vocoder" / "config.json").write_text(json.dumps({**voc, "sampling_rate": 48000}))
    _fails(src, out, "48000 Hz", "not supported")
    (src / "vocoder" / "config.json").write_text(json.dumps(voc))
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(MaaError, match="never overwrites"):
        import_audioldm(src, out)
    assert (out / "keep.txt").read_text() == "mine"
