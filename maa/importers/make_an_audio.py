"""``maa import make-an-audio``: the official Make-An-Audio release → a maa bundle.

Reads the Lightning checkpoint (``maa1_full.ckpt``), optionally its config
(``txt2audio_args.yaml``), and the BigVGAN vocoder folder (``best_netG.pt`` + ``args.yml``), all
with ``torch.load(weights_only=True)`` (:mod:`maa.importers.safe_load`), and writes a bundle on the
``paper`` mel preset:

* ``unet`` — ``model.diffusion_model.*`` (CompVis ``UNetModel``) as diffusers'
  ``UNet2DConditionModel``; the noise schedule with the CompVis DDIM timesteps, ``scale_factor``
  from the checkpoint and the release's sampling defaults (DDIM, 100 steps, guidance 3, latent
  width ``int(seconds × 7.8)`` up to a multiple of 4);
* ``vae`` — ``first_stage_model.*`` as diffusers' ``AutoencoderKL`` with the attention blocks of
  its lower levels;
* ``text_encoder`` — ``cond_stage_model.caption_encoder.*`` (MS-CLAP's BERT + projection), stored
  with the uncased BERT vocabulary of an installed package;
* ``vocoder`` — BigVGAN (:mod:`maa.models.bigvgan`) with weight norm folded.

Every tensor is accounted for: a key that maps nowhere, a parameter nothing provides, or a
shape that does not fit is an error naming them. Only training state with no place in an
inference bundle is dropped (the DDPM buffers, after checking them against the schedule; an EMA
copy, which the release does not sample with; a training loss).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from maa.bundle import Bundle, load_strict
from maa.errors import MaaError
from maa.importers import ImportSummary, staged_bundle
from maa.importers.compvis_keys import unet_key, vae_key, vae_tensor
from maa.importers.make_an_audio_config import (
    TEXT,
    UNET,
    VAE,
    Architecture,
    architecture,
    check_schedule,
    config_facts,
    first_mismatch,
    read_config,
    release_settings,
    shape_facts,
)
from maa.importers.safe_load import load_checkpoint
from maa.mel import MEL_PRESETS
from maa.models.bigvgan import BigVGANConfig, build_bigvgan, fold_official_weight_norm
from maa.models.msclap_text import MSClapTextEncoder
from maa.models.unet import build_unet
from maa.models.vae import build_vae
from maa.text import (
    MSCLAP_KIND,
    TOKENIZER_DIR,
    bert_uncased_vocab,
    write_bert_uncased_tokenizer,
)

# the release's inference (gen_wav.py): DDIM 100 steps, guidance 3, latent width int(7.8 s) → ×4
DEFAULTS = {
    "sampler": "ddim",
    "steps": 100,
    "guidance": 3.0,
    "latent_width": {"per_second": 7.8, "multiple": 4},
}
# LatentDiffusion's buffers of the DDPM schedule: recomputed by the schedulers
SCHEDULE_BUFFERS = {
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2", "logvar",
}  # fmt: skip
# training-only state: an EMA copy of the U-Net (the release samples with the raw weights), the
# autoencoder's training loss, BERT's constant position/type id buffers
DROPPED_PREFIXES = ("model_ema.", f"{VAE}loss.")
DROPPED_KEYS = {f"{TEXT}base.embeddings.position_ids", f"{TEXT}base.embeddings.token_type_ids"}
VOCODER_FILES = ("best_netG.pt", "args.yml")


def import_make_an_audio(
    ckpt: str | os.PathLike[str],
    vocoder: str | os.PathLike[str],
    out: str | os.PathLike[str],
    config: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> ImportSummary:
    """Convert the release's ``ckpt`` (+ ``config``, else inferred) and BigVGAN folder
    ``vocoder`` into a new bundle folder ``out``; nothing is left behind on failure."""
    ckpt, vocoder, out = Path(ckpt), Path(vocoder), Path(out)
    missing = [f for f in VOCODER_FILES if not (vocoder / f).is_file()]
    if not vocoder.is_dir() or missing:
        what = "does not exist" if not vocoder.is_dir() else f"has no {', '.join(missing)}"
        raise MaaError(
            f"--vocoder {vocoder} {what}; pass the release's BigVGAN folder (useful_ckpts/bigvgan"
            " with best_netG.pt and args.yml)"
        )
    vocab = bert_uncased_vocab()  # before the long part: a missing vocabulary fails fast
    with staged_bundle(out) as tmp:  # refuses a non-empty -o before any reading
        log(f"reading {ckpt} (weights only)")
        sd = official_state_dict(ckpt)
        arch = read_architecture(sd, Path(config) if config else None)
        modules, dropped = convert(sd, arch, str(ckpt))
        # scale_by_std: the release stores 1/std of its first batch's latents as a buffer
        scale = sd.get("scale_factor")
        scale_factor = float(scale) if scale is not None else 1.0
        voc_cfg, modules["vocoder"] = convert_vocoder(vocoder)
        source = {"source": "Make-An-Audio (official release)", "checkpoint": ckpt.name}
        bundle = Bundle.create(tmp, MEL_PRESETS["paper"])
        bundle.save_module("vae", modules["vae"], "vae", arch.vae.to_dict(), source)
        write_bert_uncased_tokenizer(tmp / TOKENIZER_DIR, vocab)
        bundle.save_module(
            "text_encoder", modules["text_encoder"], MSCLAP_KIND, arch.text.to_dict(), source
        )
        extra = {**source, "scale_factor": scale_factor, "schedule": arch.schedule.to_dict(),
                 "defaults": DEFAULTS}  # fmt: skip
        bundle.save_module("unet", modules["unet"], "unet", arch.unet.to_dict(), extra)
        voc_source = {"source": "BigVGAN of the Make-An-Audio release", "files": VOCODER_FILES}
        bundle.save_module("vocoder", modules["vocoder"], "bigvgan", voc_cfg.to_dict(), voc_source)
    summary = ImportSummary(out=out, source=ckpt)
    for name, module in modules.items():
        summary.tensors[name] = len(module.state_dict())
        summary.parameters[name] = sum(p.numel() for p in module.parameters())
    summary.notes += [
        f"architecture {arch.source}; latents scaled by {scale_factor:.6g} (scale_factor"
        + (")" if scale is not None else ": none in the checkpoint, 1 assumed)"),
        f"dropped {dropped} training-only tensors (DDPM schedule buffers, checked against the "
        "schedule; EMA copy; training loss)",
        "the release samples with DDIM, 100 steps, guidance 3 (recorded in the bundle; "
        "`maa generate --sampler ddim --steps 100` follows its timesteps exactly)",
    ]
    return summary


def official_state_dict(ckpt: Path) -> dict[str, torch.Tensor]:
    """The model state dict of a Make-An-Audio Lightning checkpoint, or an error saying what
    the file holds instead."""
    obj = load_checkpoint(ckpt, "--ckpt")
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        found = f"keys {_few(sorted(map(str, obj)))}" if isinstance(obj, dict) else type(obj)
        raise MaaError(
            f"--ckpt {ckpt}: not a Make-An-Audio checkpoint: expected a Lightning checkpoint "
            f"with a 'state_dict' of tensors, found {found}"
        )
    parts = {UNET: "U-Net", VAE: "autoencoder", TEXT: "MS-CLAP text encoder"}
    absent = [f"{name} ({prefix}*)" for prefix, name in parts.items()
              if not any(k.startswith(prefix) for k in sd)]  # fmt: skip
    if absent:
        prefixes: dict[str, int] = {}
        for k in sd:
            head = ".".join(k.split(".")[:2])
            prefixes[head] = prefixes.get(head, 0) + 1
        found = ", ".join(f"{p}.* ({n})" for p, n in sorted(prefixes.items())[:8])
        raise MaaError(
            f"--ckpt {ckpt}: not a Make-An-Audio checkpoint: it has no {', '.join(absent)}; "
            f"found {found or 'no tensors'}"
        )
    return sd


def read_architecture(sd: dict[str, torch.Tensor], config: Path | None) -> Architecture:
    """The architecture from ``config`` checked against the shapes, or from the shapes alone."""
    shapes = shape_facts(sd)
    if config is None:
        facts, other = {k: v for k, (v, _) in shapes.items()}, release_settings()
        arch = architecture(facts, other, "inferred from the checkpoint's shapes")
        check_schedule(sd, arch.schedule, "the release's config")
        return arch
    given, other = config_facts(read_config(config), config)
    first_mismatch(given, shapes, config)
    facts = {**{k: v for k, (v, _) in shapes.items()}, **given}
    arch = architecture(facts, other, f"from {config}, checked against the checkpoint")
    check_schedule(sd, arch.schedule, f"--config {config}")
    return arch


def convert(
    sd: dict[str, torch.Tensor], arch: Architecture, source: str
) -> tuple[dict[str, nn.Module], int]:
    """(loaded U-Net, VAE and text encoder, number of dropped training tensors)."""
    states: dict[str, dict[str, torch.Tensor]] = {"unet": {}, "vae": {}, "text_encoder": {}}
    unmapped, dropped = [], 0
    for key, value in sd.items():
        if key == "scale_factor":  # read by the caller
            continue
        place = _place(key, value, arch)
        if place is None:
            dropped += 1
            continue
        component, name, tensor = place
        if name is None:
            unmapped.append(key)
        elif name in states[component]:
            raise MaaError(f"{source}: two checkpoint keys map onto {component} {name}")
        else:
            states[component][name] = tensor
    if unmapped:
        raise MaaError(
            f"{source}: {len(unmapped)} checkpoint key(s) have no place in the Make-An-Audio "
            f"architecture ({arch.source}): {_few(unmapped)}"
        )
    modules = {
        "unet": build_unet(arch.unet),
        "vae": build_vae(arch.vae),
        "text_encoder": MSClapTextEncoder(arch.text),
    }
    for name, module in modules.items():
        load_strict(module, states[name], f"{source} ({name})")
        module.eval()
    return modules, dropped


def _place(
    key: str, value: torch.Tensor, arch: Architecture
) -> tuple[str, str | None, torch.Tensor] | None:
    """(component, its parameter name — None when the key has no place —, tensor) of checkpoint
    key ``key``; None for training state that is dropped."""
    if key in SCHEDULE_BUFFERS or key in DROPPED_KEYS or key.startswith(DROPPED_PREFIXES):
        return None
    if key.startswith(UNET):
        u = arch.unet
        return "unet", unet_key(key[len(UNET) :], u.layers_per_block, u.cross_attn_levels), value
    if key.startswith(VAE):
        levels = len(arch.vae.block_out_channels)
        name = vae_key(key[len(VAE) :], levels, arch.vae.attention_levels)
        if name is None:
            return "vae", None, value
        return "vae", f"model.{name}", vae_tensor(name, value)  # SpectrogramVAE.model
    if key.startswith(TEXT):
        return "text_encoder", key[len(TEXT) :], value
    return "unet", None, value  # outside every component


def convert_vocoder(folder: Path) -> tuple[BigVGANConfig, nn.Module]:
    """BigVGAN's config from ``args.yml`` and its generator from ``best_netG.pt``."""
    import yaml

    args_path = folder / "args.yml"
    try:
        args = yaml.safe_load(args_path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MaaError(f"{args_path}: not readable YAML ({exc})") from None
    if not isinstance(args, dict):
        raise MaaError(f"{args_path}: expected BigVGAN's settings as a mapping")
    names = {
        "num_mels", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
        "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes", "activation",
        "snake_logscale",
    }  # fmt: skip
    absent = sorted(n for n in names if n not in args)
    if absent:
        raise MaaError(f"{args_path}: not a BigVGAN config: no {', '.join(absent)}")
    cfg = BigVGANConfig.from_dict(
        {n: str(args[n]) if n == "resblock" else args[n] for n in names}, str(args_path)
    )
    cfg.validate()
    paper = MEL_PRESETS["paper"]
    for what, have, want in (("hop", cfg.hop, paper.hop_length), ("mels", cfg.num_mels, 80)):
        if have != want:
            raise MaaError(
                f"{args_path}: this BigVGAN has {what} {have}; the `paper` mel preset needs {want}"
            )
    if "sampling_rate" in args and int(args["sampling_rate"]) != paper.sample_rate:
        raise MaaError(f"{args_path}: sampling_rate {args['sampling_rate']}, expected 16000")
    path = folder / "best_netG.pt"
    obj = load_checkpoint(path, "vocoder checkpoint")
    if not isinstance(obj, dict) or not isinstance(obj.get("generator"), dict):
        found = f"keys {_few(sorted(map(str, obj)))}" if isinstance(obj, dict) else type(obj)
        raise MaaError(f"{path}: expected BigVGAN's {{'generator': state_dict}}, found {found}")
    generator = build_bigvgan(cfg)
    load_strict(generator, fold_official_weight_norm(obj["generator"]), f"{path} (generator)")
    return cfg, generator.eval()


def _few(items: list[str], n: int = 6) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")
