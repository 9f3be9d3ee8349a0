"""``maa import make-an-audio`` against the upstream implementations, at reduced width.

The tests build random models in the exact official layouts with real upstream code — the
CompVis ``UNetModel`` and LDM autoencoder ``Encoder``/``Decoder`` of ``audioldm==0.1.1``,
NVIDIA's ``bigvgan==2.4.1`` (configured as v1: snake-beta, tanh, biased final conv) and the
CLAP ``TextEncoder``/``Projection`` of ``msclap==1.3.4`` over a transformers ``BertModel`` —
save them as the release does (a Lightning ``.ckpt``, ``best_netG.pt`` + ``args.yml``, a YAML
config shaped like ``txt2audio_args.yaml``), import, and compare every converted component
with the upstream computation (≤ 1e-4 relative error in fp32). ``make install`` installs the
references (``--no-deps``: their package ``__init__``s pull in torchaudio, librosa …, so only the
module files needed are loaded, under package stubs).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import pathlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from maa.errors import MaaError

REFERENCES = {"audioldm": "0.1.1", "bigvgan": "2.4.1", "msclap": "1.3.4", "einops": "0.8.2"}
WIDTH = {"unet": 32, "context": 64, "vae": 32, "bert": 128, "bigvgan": 128}
TOL = 1e-4


# -- the upstream references, loaded without their package __init__ ---------------------------
STUBBED = ("audioldm", "bigvgan", "msclap", "progressbar", "omegaconf")


@contextlib.contextmanager
def _package_stubs(stubs: dict[str, types.ModuleType]):
    """Put ``stubs`` in sys.modules while the references import and run (UNetModel imports
    omegaconf when it is built); afterwards remove every module of those packages, so other
    test modules see an unchanged interpreter."""
    saved = {n: m for n, m in sys.modules.items() if n.split(".")[0] in STUBBED}
    sys.modules.update(stubs)
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] in STUBBED]:
            del sys.modules[name]
        sys.modules.update(saved)


def _package(name: str) -> types.ModuleType:
    """An empty package ``name`` whose submodules load from the installed package's folder."""
    spec = importlib.util.find_spec(name.split(".")[0])
    if spec is None or not spec.submodule_search_locations:
        version = REFERENCES[name.split(".")[0]]
        pytest.skip(f"test reference {name.split('.')[0]}=={version} is not installed "
                    "(`make install` installs it)")  # fmt: skip
    root = Path(next(iter(spec.submodule_search_locations)))
    module = types.ModuleType(name)
    module.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
    return module


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@pytest.fixture(scope="module")
def refs():
    """The upstream classes: CompVis UNetModel, LDM Encoder/Decoder, BigVGAN (+ AttrDict) and
    MS-CLAP's TextEncoder."""
    if importlib.util.find_spec("einops") is None:
        pytest.skip("test reference einops (needed by audioldm) is not installed (make install)")
    stubs = {n: _package(n) for n in ("audioldm", "audioldm.latent_diffusion",
             "audioldm.variational_autoencoder", "bigvgan", "msclap", "msclap.models")}  # fmt: skip
    # imported by modules we load, for code paths these tests do not run
    stubs["bigvgan.meldataset"] = _module("bigvgan.meldataset", MAX_WAV_VALUE=32767.0)
    stubs["msclap.models.audio"] = _module("msclap.models.audio", get_audio_encoder=None)
    for missing in ("progressbar", "omegaconf", "omegaconf.listconfig"):
        if importlib.util.find_spec(missing.split(".")[0]) is None:
            stubs[missing] = _module(missing, ListConfig=type("ListConfig", (), {}))
    with _package_stubs(stubs):
        openai = importlib.import_module("audioldm.latent_diffusion.openaimodel")
        vae = importlib.import_module("audioldm.variational_autoencoder.modules")
        bigvgan = importlib.import_module("bigvgan.bigvgan")
        env = importlib.import_module("bigvgan.env")
        clap = importlib.import_module("msclap.models.clap")
        yield types.SimpleNamespace(
            UNetModel=openai.UNetModel, Encoder=vae.Encoder, Decoder=vae.Decoder,
            BigVGAN=bigvgan.BigVGAN, AttrDict=env.AttrDict, TextEncoder=clap.TextEncoder,
        )  # fmt: skip


def _randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random (zero-initialised output convs too), at scales that keep
    activations near unit size."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.dim() > 1:  # weights (and weight-norm magnitudes: unit-size rows)
                p.copy_(noise / p[0].numel() ** 0.5)
            elif name.endswith(("bias", "alpha", "beta")):
                p.copy_(0.1 * noise)
            else:  # norm scales
                p.copy_(1 + 0.1 * noise)
    return module.eval()


# -- the official layouts at reduced width ------------------------------------------------------
def _config() -> dict:
    """txt2audio_args.yaml with the widths reduced (every other value as released)."""
    return {
        "model": {
            "base_learning_rate": 1e-5,
            "target": "ldm.models.diffusion.ddpm_audio.LatentDiffusion_audio",
            "params": {
                "linear_start": 0.00085, "linear_end": 0.012, "num_timesteps_cond": 1,
                "timesteps": 1000, "first_stage_key": "image", "cond_stage_key": "caption",
                "mel_dim": 10, "mel_length": 78, "channels": 4, "cond_stage_trainable": False,
                "conditioning_key": "crossattn", "scale_by_std": True, "use_ema": False,
                "unet_config": {
                    "target": "ldm.modules.diffusionmodules.openaimodel.UNetModel",
                    "params": {
                        "image_size": 32, "in_channels": 4, "out_channels": 4,
                        "model_channels": WIDTH["unet"], "attention_resolutions": [1, 2],
                        "num_res_blocks": 2, "channel_mult": [1, 2], "num_heads": 8,
                        "use_spatial_transformer": True, "transformer_depth": 1,
                        "context_dim": WIDTH["context"], "use_checkpoint": True, "legacy": False,
                    },
                },
                "first_stage_config": {
                    "target": "ldm.models.autoencoder.AutoencoderKL",
                    "params": {
                        "embed_dim": 4, "monitor": "val/rec_loss",
                        "ddconfig": {
                            "double_z": True, "z_channels": 4, "resolution": 624,
                            "in_channels": 1, "out_ch": 1, "ch": WIDTH["vae"],
                            "ch_mult": [1, 2, 2, 4], "num_res_blocks": 2,
                            "attn_resolutions": [78, 156], "dropout": 0.0,
                        },
                        "lossconfig": {"target": "torch.nn.Identity"},
                    },
                },
                "cond_stage_config": {
                    "target": "ldm.modules.encoders.modules.FrozenCLAPEmbedder",
                    "params": {"weights_path": None},
                },
            },
        }
    }  # fmt: skip


BIGVGAN_ARGS = {
    "resblock": "1", "num_gpus": 0, "batch_size": 64, "num_mels": 80, "learning_rate": 1e-4,
    "upsample_rates": [4, 4, 2, 2, 2, 2], "upsample_kernel_sizes": [8, 8, 4, 4, 4, 4],
    "upsample_initial_channel": WIDTH["bigvgan"], "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "activation": "snakebeta",
    "snake_logscale": True, "sampling_rate": 16000, "hop_size": 256,
}  # fmt: skip


class _LdmAutoencoder(torch.nn.Module):
    """The LDM AutoencoderKL's modules under their names (its loss is nn.Identity)."""

    def __init__(self, refs, dd: dict, embed_dim: int) -> None:
        super().__init__()
        kw = {k: v for k, v in dd.items() if k != "double_z"}
        self.encoder = refs.Encoder(double_z=True, **kw)
        self.decoder = refs.Decoder(**kw)
        self.quant_conv = torch.nn.Conv2d(2 * dd["z_channels"], 2 * embed_dim, 1)
        self.post_quant_conv = torch.nn.Conv2d(embed_dim, dd["z_channels"], 1)

    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant_conv(self.encoder(x)).chunk(2, dim=1)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(z))


def _bert_folder(tmp: Path) -> Path:
    from transformers import BertConfig, BertModel

    folder = tmp / "bert"
    cfg = BertConfig(hidden_size=WIDTH["bert"], num_hidden_layers=2,
                     num_attention_heads=WIDTH["bert"] // 64, intermediate_size=256)  # fmt: skip
    BertModel(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def release(refs, tmp_path_factory) -> types.SimpleNamespace:
    """The reference models and their files in the release's layout."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("maa_release")
    params = _config()["model"]["params"]
    u = params["unet_config"]["params"]
    unet = _randomize(refs.UNetModel(**u), 1)
    dd = params["first_stage_config"]["params"]["ddconfig"]
    vae = _randomize(_LdmAutoencoder(refs, dd, 4), 2)
    text = refs.TextEncoder(WIDTH["context"], str(_bert_folder(tmp)), WIDTH["bert"])
    text = _randomize(text, 3)
    voc = _randomize(refs.BigVGAN(refs.AttrDict(BIGVGAN_ARGS), use_cuda_kernel=False), 4)
    sd = {f"model.diffusion_model.{k}": v for k, v in unet.state_dict().items()}
    sd.update({f"first_stage_model.{k}": v for k, v in vae.state_dict().items()})
    sd.update({f"cond_stage_model.caption_encoder.{k}": v for k, v in text.state_dict().items()})
    # what older transformers stored, the DDPM buffers and the std-rescaling factor
    sd["cond_stage_model.caption_encoder.base.embeddings.position_ids"] = torch.arange(512)[None]
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    sd["betas"] = betas.float()
    sd["alphas_cumprod"] = torch.cumprod(1 - betas, 0).float()
    sd["scale_factor"] = torch.tensor(0.87)
    ckpt = tmp / "maa1_full.ckpt"
    callbacks = {"ModelCheckpoint{'monitor': 'val/loss_simple_ema'}": {
        "best_model_score": np.float64(0.0123), "best_model_path": "logs/last.ckpt"}}  # fmt: skip
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 12000, "callbacks": callbacks,
                "optimizer_states": [], "lr_schedulers": []}, ckpt)  # fmt: skip
    config = tmp / "txt2audio_args.yaml"
    config.write_text(yaml.safe_dump(_config()))
    vocoder = tmp / "bigvgan"
    vocoder.mkdir()
    torch.save({"generator": voc.state_dict()}, vocoder / "best_netG.pt")
    (vocoder / "args.yml").write_text(yaml.safe_dump(BIGVGAN_ARGS))
    return types.SimpleNamespace(unet=unet, vae=vae, text=text, voc=voc, ckpt=ckpt, sd=sd,
                                 config=config, vocoder=vocoder, tmp=tmp)  # fmt: skip


@pytest.fixture(scope="module")
def imported(release) -> types.SimpleNamespace:
    from maa.importers.make_an_audio import import_make_an_audio

    out = release.tmp / "bundle"
    summary = import_make_an_audio(release.ckpt, release.vocoder, out, release.config, log=print)
    return types.SimpleNamespace(out=out, summary=summary)


def _rel(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.double() - ref.double()).norm() / ref.double().norm())


# -- parity ------------------------------------------------------------------------------------
def test_every_key_maps(release, imported):
    s = imported.summary
    assert s.tensors["unet"] == len(release.unet.state_dict())
    assert s.tensors["vae"] == len(release.vae.state_dict())
    # BERT's position ids are a constant buffer, not a weight
    assert s.tensors["text_encoder"] == len(release.text.state_dict())
    voc = release.voc.state_dict()
    norms = sum(k.endswith("weight_g") or k.endswith("original0") for k in voc)
    assert norms > 0 and s.tensors["vocoder"] == len(voc) - norms  # g and v fold into one weight


def test_unet_matches_compvis(release, imported):
    from maa.bundle import Bundle
    from maa.models.unet import UNetConfig, build_unet

    bundle = Bundle.open(imported.out)
    unet = build_unet(UNetConfig.from_dict(bundle.config("unet")))
    bundle.load_into("unet", unet)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 10, 16, generator=g)
    t = torch.tensor([991, 17])
    ctx = torch.randn(2, 77, WIDTH["context"], generator=g)
    with torch.no_grad():
        ref = release.unet(x, t, context=ctx)
        ours = unet.eval()(x, t, encoder_hidden_states=ctx).sample
    err = _rel(ours, ref)
    print(f"U-Net relative error {err:.2e}")
    assert err <= TOL


def test_vae_matches_ldm_autoencoder_with_level_attention(release, imported):
    from maa.bundle import Bundle
    from maa.models.vae import load_vae

    bundle = Bundle.open(imported.out)
    assert bundle.config("vae")["attention_levels"] == [False, False, True, True]
    vae = load_vae(bundle)
    assert sum(".attentions." in k and "mid_block" not in k for k in vae.state_dict()) > 0
    g = torch.Generator().manual_seed(6)
    mel = torch.randn(2, 80, 32, generator=g) - 2
    z = torch.randn(2, 4, 10, 4, generator=g)
    with torch.no_grad():
        enc_err = _rel(vae.encode(mel).mean, release.vae.encode_mean(mel.unsqueeze(1)))
        dec_err = _rel(vae.decode(z), release.vae.decode(z).squeeze(1))
    print(f"VAE relative error: encode {enc_err:.2e}, decode {dec_err:.2e}")
    assert enc_err <= TOL and dec_err <= TOL


def test_text_encoder_matches_msclap_as_make_an_audio_runs_it(release, imported):
    from transformers import AutoTokenizer

    from maa.bundle import Bundle
    from maa.text import minilm_path, text_encoder_from_bundle

    enc = text_encoder_from_bundle(Bundle.open(imported.out))
    prompts = ["A dog barks while rain falls on a tin roof", ""]
    emb = enc.encode(prompts)
    # FrozenCLAPEmbedder.encode: 77 tokens, padded, BERT without a mask, every state projected
    tok = AutoTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)
    ids = tok(prompts, truncation=True, max_length=77, padding="max_length",
              return_tensors="pt")["input_ids"]  # fmt: skip
    with torch.no_grad():
        ref = release.text.projection(release.text.base(input_ids=ids).last_hidden_state)
        cls = release.text(
            {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        )  # CLAP's sentence embedding: the projected [CLS] state
    assert emb.tokens.shape == (2, 77, WIDTH["context"]) and bool(emb.mask.all())
    err = _rel(emb.tokens, ref)
    print(f"text encoder relative error {err:.2e}")
    assert err <= TOL and _rel(emb.pooled, cls) <= TOL


def test_bigvgan_matches_nvidia(release, imported):
    from maa.bundle import Bundle
    from maa.vocoder import resolve_vocoder_for

    voc = resolve_vocoder_for(Bundle.open(imported.out))
    assert voc.kind == "bigvgan" and voc.sample_rate == 16000
    g = torch.Generator().manual_seed(7)
    mel = torch.randn(1, 80, 12, generator=g) - 3
    with torch.no_grad():
        ours = voc.generator(mel)
        ref = release.voc(mel)
    err = _rel(ours, ref)
    print(f"BigVGAN relative error {err:.2e}")
    assert err <= TOL
    # vocoding in chunks (with the receptive field as context) equals one pass
    long = torch.rand(1, 80, 40, generator=g) * 4 - 5  # log10 mel values
    voc.chunk_frames = 8
    with torch.no_grad():
        assert _rel(voc(long), release.voc(long).squeeze(1)) <= 1e-5


def test_inferred_architecture_equals_the_config(release, imported, tmp_path):
    from maa.bundle import Bundle
    from maa.importers.make_an_audio import import_make_an_audio

    out = tmp_path / "inferred"
    import_make_an_audio(release.ckpt, release.vocoder, out, None, log=lambda m: None)
    a, b = Bundle.open(imported.out), Bundle.open(out)
    for name in ("unet", "vae", "text_encoder", "vocoder"):
        assert a.config(name) == b.config(name)
        sa, sb = a.state_dict(name), b.state_dict(name)
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.component("unet")["scale_factor"] == pytest.approx(0.87)


# -- the bundle in use ----------------------------------------------------------------------------
def test_generate_uses_the_release_defaults(imported):
    from maa.generate import Generator, make_scheduler

    gen = Generator.from_bundle(imported.out, device="cpu", dtype="fp32")
    assert gen.latent_shape(10.0) == (4, 10, 80)  # int(10 × 7.8) = 78 → 80
    assert gen.latent_shape(5.0) == (4, 10, 40)
    assert gen.bundle.component("unet")["defaults"]["sampler"] == "ddim"
    ddim = make_scheduler("ddim", gen.schedule)
    ddim.set_timesteps(100)
    assert ddim.timesteps[0] == 991 and ddim.timesteps[-1] == 1  # CompVis' DDIM timesteps
    dpm = make_scheduler("dpmpp-2m", gen.schedule)
    dpm.set_timesteps(25)
    assert dpm.timesteps[0] == 999  # other samplers keep "trailing"
    [clip] = gen.generate("a dog barks", duration=1.0, steps=2, sampler="ddim", seed=0)
    assert clip.sr == 16000 and clip.wave.shape == (16000,) and torch.isfinite(clip.wave).all()


def test_cli_import(release, tmp_path):
    from typer.testing import CliRunner

    from maa.cli.app import app

    out = tmp_path / "cli_bundle"
    args = ["import", "make-an-audio", "--ckpt", str(release.ckpt), "--vocoder",
            str(release.vocoder), "-o", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "bundle.json").is_file() and (out / "text_encoder_tokenizer/vocab.txt").is_file()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "not an empty folder" in again.output


# -- bad input ---------------------------------------------------------------------------------
def _import(release, tmp_path, ckpt=None, vocoder=None, config=None):
    from maa.importers.make_an_audio import import_make_an_audio

    return import_make_an_audio(ckpt or release.ckpt, vocoder or release.vocoder,
                                tmp_path / "out", config, log=lambda m: None)  # fmt: skip


def _save_ckpt(path: Path, sd: dict) -> Path:
    torch.save({"state_dict": sd}, path)
    return path


def test_not_make_an_audio_says_what_was_found(release, tmp_path):
    sd = {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1),
          "cond_stage_model.transformer.text_model.embeddings.x": torch.zeros(1)}  # fmt: skip
    with pytest.raises(
        MaaError, match=r"not a Make-An-Audio checkpoint.*cond_stage_model\.transformer"
    ):
        _import(release, tmp_path, ckpt=_save_ckpt(tmp_path / "sd.ckpt", sd))
    torch.save([1, 2, 3], tmp_path / "list.ckpt")
    with pytest.raises(MaaError, match="not a Make-An-Audio checkpoint"):
        _import(release, tmp_path, ckpt=tmp_path / "list.ckpt")
    assert not (tmp_path / "out").exists()


def test_config_that_disagrees_names_the_first_mismatch(release, tmp_path):
    cfg = _config()
    cfg["model"]["params"]["unet_config"]["params"]["model_channels"] = 64
    cfg["model"]["params"]["first_stage_config"]["params"]["ddconfig"]["ch"] = 64
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(cfg))
    first = r"unet\.model_channels = 64.*has 32 \(from model\.diffusion_model\.input_blocks\.0\.0\."
    with pytest.raises(MaaError, match=first):
        _import(release, tmp_path, config=path)
    cfg = _config()
    cfg["model"]["params"]["first_stage_config"]["params"]["ddconfig"]["attn_resolutions"] = []
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(MaaError, match=r"vae\.attention_levels = \[False, False, False, False\]"):
        _import(release, tmp_path, config=path)


def test_left_over_missing_and_misshaped_keys_are_named(release, tmp_path):
    sd = dict(release.sd)
    sd["model.diffusion_model.input_blocks.1.2.weight"] = torch.zeros(3)
    with pytest.raises(MaaError, match=r"no place .*input_blocks\.1\.2\.weight"):
        _import(release, tmp_path, ckpt=_save_ckpt(tmp_path / "extra.ckpt", sd))
    sd = dict(release.sd)
    del sd["first_stage_model.decoder.up.3.attn.1.k.weight"]
    named = r"missing keys model\.decoder\.up_blocks\.0\.attentions\.1\.to_k\.weight"
    with pytest.raises(MaaError, match=named):
        _import(release, tmp_path, ckpt=_save_ckpt(tmp_path / "missing.ckpt", sd))
    sd = dict(release.sd)
    key = "model.diffusion_model.output_blocks.2.0.out_layers.3.bias"
    sd[key] = torch.zeros(7)
    named = r"shape mismatches up_blocks\.0\.resnets\.2\.conv2\.bias \(7,\)"
    with pytest.raises(MaaError, match=named):
        _import(release, tmp_path, ckpt=_save_ckpt(tmp_path / "shape.ckpt", sd))
    sd = dict(release.sd)
    sd["betas"] = sd["betas"] * 2
    with pytest.raises(MaaError, match="noise schedule"):
        _import(release, tmp_path, ckpt=_save_ckpt(tmp_path / "betas.ckpt", sd))


def test_pickle_with_other_globals_is_refused_naming_them(release, tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": release.sd, "hparams": pathlib.PurePosixPath("/x")}, path)
    with pytest.raises(MaaError, match=r"refused to unpickle.*pathlib\.PurePosixPath"):
        _import(release, tmp_path, ckpt=path)
    path.write_text("not a checkpoint")
    with pytest.raises(MaaError, match="not a readable torch checkpoint"):
        _import(release, tmp_path, ckpt=path)


def test_missing_vocoder_and_vocabulary(release, tmp_path, monkeypatch):
    with pytest.raises(MaaError, match=r"--vocoder .* does not exist"):
        _import(release, tmp_path, vocoder=tmp_path / "nowhere")
    empty = tmp_path / "empty_vocoder"
    empty.mkdir()
    with pytest.raises(MaaError, match=r"has no best_netG\.pt, args\.yml"):
        _import(release, tmp_path, vocoder=empty)
    monkeypatch.setattr("maa.text.package_path", lambda name: None)
    with pytest.raises(MaaError, match="uncased BERT WordPiece vocabulary"):
        _import(release, tmp_path)


def test_the_packaged_vocabulary_is_bert_base_uncased():
    from maa.text import BERT_UNCASED_VOCAB_SIZE, bert_uncased_vocab

    lines = bert_uncased_vocab().read_text(encoding="utf-8").splitlines()
    assert len(lines) == BERT_UNCASED_VOCAB_SIZE == 30522
    assert [lines[i] for i in (0, 100, 101, 102, 103, 1996)] == [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the"]  # fmt: skip
    words = [line for line in lines if not line.startswith("[")]
    assert not any("A" <= c <= "Z" for word in words for c in word)  # uncased


def test_existing_schedules_keep_their_timesteps():
    from maa.models.unet import NoiseSchedule

    for sampler in ("ddim", "dpmpp-2m", None):
        cfg = NoiseSchedule().scheduler_config(sampler)
        assert cfg["timestep_spacing"] == "trailing" and cfg["steps_offset"] == 0
        assert "ddim_timesteps" not in cfg
