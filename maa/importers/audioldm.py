"""``maa import audioldm DIR -o BUNDLE``: a diffusers-format AudioLDM folder → a ``maa`` bundle.

``DIR`` is what ``AudioLDMPipeline.save_pretrained`` writes (also a Hugging Face snapshot such as
``cvssp/audioldm-s-full-v2``): ``unet/ vae/ text_encoder/ tokenizer/ vocoder/ scheduler/``. The
bundle uses the ``audioldm`` mel preset (16 kHz, n_fft 1024, hop 160, 64 mels, 0–8 kHz, ln) and
holds:

* ``unet`` — the ``UNet2DConditionModel`` as it is (kind ``diffusers-unet``, its own config). It
  is conditioned by the L2-normalised CLAP text embedding through its class embedding, with no
  cross-attention context; ``scale_factor`` is the VAE's ``scaling_factor`` and the noise
  schedule comes from ``scheduler/`` (``--sampler ddim`` takes the folder's DDIM timesteps).
* ``vae`` — the ``AutoencoderKL`` inside :class:`~maa.models.vae.SpectrogramVAE` with
  ``time_major``: AudioLDM's VAE sees the mel as a ``(T, 64)`` image, so latents are
  ``(z, T/4, 16)``.
* ``text_encoder`` — the ``ClapTextModelWithProjection`` and its tokenizer, saved as safetensors
  in ``BUNDLE/text_encoder/`` (the bundle is self-contained; the source can be deleted).
* ``vocoder`` — the ``SpeechT5HifiGan`` (kind ``speecht5-hifigan``, its own config).

With the same initial latents, steps, DDIM and guidance > 1, ``maa generate`` gives the audio of
``AudioLDMPipeline`` to float error (``tests/test_import_audioldm.py``). Where ``maa`` differs:
decoded log-mels are clamped to ``[ln 1e-5, ln 1e3]`` before vocoding (real ones never leave
that range), guidance between 0 and 1 still mixes the two passes (the pipeline runs the
conditional one alone), and the default sampler is ``maa``'s (DPM-Solver++, trailing
timesteps) unless ``--sampler ddim`` is given.
"""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path
from typing import Any

from torch import nn

from maa.bundle import Bundle
from maa.errors import MaaError, ensure_free_space
from maa.importers import (
    ImportSummary,
    load_checked,
    read_json,
    read_weights,
    staged_bundle,
)
from maa.mel import get_mel_preset
from maa.models.hifigan import SPEECHT5_KIND, build_speecht5
from maa.models.unet import DIFFUSERS_UNET, NoiseSchedule, takes_class_labels
from maa.models.vae import SpectrogramVAE, VAEConfig

# AudioLDMPipeline's own defaults (num_inference_steps 10, guidance_scale 2.5) with the folder's
# DDIM schedule: what `maa generate` uses on the imported bundle unless told otherwise
PIPELINE_DEFAULTS = {"sampler": "ddim", "steps": 10, "guidance": 2.5}
COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "vocoder", "scheduler")
PIPELINE = "AudioLDMPipeline"
DIFFUSERS_WEIGHTS = ("diffusion_pytorch_model",)  # file stems the two libraries save under
TRANSFORMERS_WEIGHTS = ("model", "pytorch_model")
# what each subfolder's config must say it holds: (config file, field, accepted values)
KINDS = {
    "unet": ("config.json", "_class_name", ("UNet2DConditionModel",)),
    "vae": ("config.json", "_class_name", ("AutoencoderKL",)),
    "text_encoder": ("config.json", "model_type", ("clap_text_model",)),
    "vocoder": ("config.json", "model_type", ("speecht5_hifigan",)),
    "scheduler": ("scheduler_config.json", "_class_name", None),  # any diffusers scheduler
}
# AutoencoderKL config fields that do not change the network (sample_size: a default image
# size; scaling_factor: becomes the bundle's scale_factor; force_upcast: a pipeline dtype hint)
VAE_NOT_ARCHITECTURE = ("sample_size", "scaling_factor", "force_upcast")
VOCODER_FIELDS = ("model_in_dim", "sampling_rate", "upsample_initial_channel", "upsample_rates",
                  "upsample_kernel_sizes", "resblock_kernel_sizes", "resblock_dilation_sizes",
                  "leaky_relu_slope", "normalize_before")  # fmt: skip
# scheduler settings maa's samplers do not take from the bundle: the value they assume
SCHEDULER_ASSUMES = {"clip_sample": False, "set_alpha_to_one": False, "thresholding": False,
                     "rescale_betas_zero_snr": False, "trained_betas": None}  # fmt: skip


def import_audioldm(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> ImportSummary:
    """Convert the AudioLDM folder ``source`` into a new bundle ``out`` (which must not exist or
    be an empty folder). Every input is checked before anything is written; errors name the
    component, file and field."""
    from diffusers import UNet2DConditionModel
    from transformers import AutoConfig, ClapTextModelWithProjection
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    src = check_folder(Path(source).expanduser())
    cfgs = {name: read_component_config(src, name) for name in KINDS}
    mel = check_mel(cfgs["vocoder"], src)
    vae_cfg, scale_factor = vae_config(cfgs["vae"], src)
    schedule = noise_schedule(cfgs["scheduler"], src)
    summary = ImportSummary(Path(out), src)

    vae = SpectrogramVAE(vae_cfg)
    _check_vae_architecture(vae, cfgs["vae"], src)
    if mel.frame_multiple % vae.downsample:
        raise MaaError(
            f"{src / 'vae'}: the VAE downsamples by {vae.downsample}, but the audioldm preset pads "
            f"frames to multiples of {mel.frame_multiple}; not an AudioLDM VAE"
        )
    unet = UNet2DConditionModel.from_config(_public(cfgs["unet"]))
    text_cfg = AutoConfig.from_pretrained(str(src / "text_encoder"), local_files_only=True)
    _check_unet(unet, vae_cfg, int(text_cfg.projection_dim), src)
    text = ClapTextModelWithProjection(text_cfg)
    tokenizer = _tokenizer(src, text_cfg)
    voc_cfg = _vocoder_config(src)
    vocoder = build_speecht5(voc_cfg)
    parts: dict[str, tuple[nn.Module, tuple[str, ...]]] = {
        "vae": (vae.model, DIFFUSERS_WEIGHTS),
        "unet": (unet, DIFFUSERS_WEIGHTS),
        "text_encoder": (text, TRANSFORMERS_WEIGHTS),
        "vocoder": (vocoder, TRANSFORMERS_WEIGHTS),
    }
    for name, (module, stems) in parts.items():
        state, file = read_weights(src / name, stems, f"the {name}/ component")
        filled = load_checked(module, state, str(file))
        summary.filled += [f"{name}: {k}" for k in filled]
        summary.tensors[name] = len(state)
        summary.parameters[name] = sum(p.numel() for p in module.parameters())

    size = sum(t.numel() * t.element_size() for m, _ in parts.values()
               for t in m.state_dict().values())  # fmt: skip
    ensure_free_space(summary.out.parent, size, "the imported bundle")
    with staged_bundle(summary.out) as tmp:
        bundle = Bundle.create(tmp, mel)
        bundle.save_module("vae", vae, "vae", vae_cfg.to_dict())
        extra = {"scale_factor": scale_factor, "schedule": schedule.to_dict(),
                 "defaults": PIPELINE_DEFAULTS,
                 "imported_from": {"kind": "audioldm", "path": str(src)}}  # fmt: skip
        bundle.save_module("unet", unet, DIFFUSERS_UNET, _public(unet.config), extra)
        text.save_pretrained(str(tmp / "text_encoder"))
        tokenizer.save_pretrained(str(tmp / "text_encoder"))
        max_length = _max_length(tmp / "text_encoder", int(text_cfg.projection_dim))
        te_cfg = {"spec": "clap:text_encoder", "width": int(text_cfg.projection_dim),
                  "max_length": max_length}  # fmt: skip
        bundle.set_reference("text_encoder", "text_encoder", "path:text_encoder", te_cfg)
        bundle.save_module("vocoder", vocoder, SPEECHT5_KIND, voc_cfg)
    if summary.filled:
        summary.notes.append(
            f"{len(summary.filled)} buffer(s) absent from the source were rebuilt as the model "
            f"defines them: {', '.join(summary.filled)}"
        )
    return summary


# -- checks ---------------------------------------------------------------------------------
def check_folder(src: Path) -> Path:
    """``src`` as an AudioLDM folder, or an error that says what it is instead."""
    if not src.exists():
        raise MaaError(f"{src} does not exist; pass a local diffusers AudioLDM folder")
    if not src.is_dir():
        raise MaaError(
            f"{src} is a file; pass the AudioLDM folder that holds {', '.join(COMPONENTS)}/"
        )
    if (src / "bundle.json").is_file():
        raise MaaError(f"{src} is already a maa bundle; use it directly (--bundle {src})")
    snapshots = src / "snapshots"
    if snapshots.is_dir() and not (src / "unet").is_dir():
        found = sorted(p for p in snapshots.iterdir() if p.is_dir())
        hint = f" ({found[-1]})" if len(found) == 1 else ""
        raise MaaError(
            f"{src} is a Hugging Face cache entry; pass the snapshot folder inside it, "
            f"{snapshots}/<revision>{hint}"
        )
    index = src / "model_index.json"
    if index.is_file():
        kind = read_json(index, "the folder").get("_class_name")
        if kind != PIPELINE:
            raise MaaError(
                f"{index}: the folder holds a {kind!r} pipeline; `maa import audioldm` reads "
                f"{PIPELINE} folders (AudioLDM 2, Stable Audio and others are not supported)"
            )
    present = [c for c in COMPONENTS if (src / c).is_dir()]
    missing = [c for c in COMPONENTS if c not in present]
    if not present:
        raise MaaError(
            f"{src} is not a diffusers AudioLDM folder: it has none of "
            f"{', '.join(c + '/' for c in COMPONENTS)} (as AudioLDMPipeline.save_pretrained or "
            "a Hugging Face snapshot of cvssp/audioldm-* lays them out)"
        )
    if missing:
        raise MaaError(
            f"{src}: the AudioLDM folder has no {', '.join(c + '/' for c in missing)} "
            f"(it has {', '.join(c + '/' for c in present)}); copy the complete folder"
        )
    return src


def read_component_config(src: Path, name: str) -> dict[str, Any]:
    """A component's config, checked to hold the kind of model AudioLDM has there."""
    file, key, accepted = KINDS[name]
    cfg = read_json(src / name / file, f"the {name}/ component")
    found = cfg.get(key)
    if accepted is not None and found not in accepted:
        raise MaaError(
            f"{src / name / file}: {name}/ holds a {found!r} ({key}), but an AudioLDM folder "
            f"has a {' or '.join(accepted)} there"
        )
    if accepted is None and not str(found).endswith("Scheduler"):
        raise MaaError(f"{src / name / file}: not a diffusers scheduler config ({key}={found!r})")
    return cfg


def check_mel(vocoder: dict[str, Any], src: Path):
    """The ``audioldm`` mel preset, after checking that the vocoder works at its rate and size."""
    mel = get_mel_preset("audioldm")
    rates = vocoder.get("upsample_rates", [])
    found = (vocoder.get("sampling_rate"), vocoder.get("model_in_dim"), math.prod(rates))
    if found != (mel.sample_rate, mel.n_mels, mel.hop_length):
        raise MaaError(
            f"{src / 'vocoder'}: the vocoder works at {found[0]} Hz with {found[1]} mels and hop "
            f"{found[2]}, but maa's 'audioldm' preset is {mel.sample_rate} Hz, {mel.n_mels} mels, "
            f"hop {mel.hop_length} (the 16 kHz AudioLDM models); this variant is not supported"
        )
    return mel


def vae_config(cfg: dict[str, Any], src: Path) -> tuple[VAEConfig, float]:
    """The :class:`VAEConfig` of AudioLDM's ``AutoencoderKL`` and its ``scaling_factor``."""
    from diffusers import AutoencoderKL

    try:
        vae_cfg = VAEConfig(
            block_out_channels=tuple(cfg["block_out_channels"]),
            layers_per_block=int(cfg["layers_per_block"]),
            latent_channels=int(cfg["latent_channels"]),
            norm_num_groups=int(cfg["norm_num_groups"]),
            mid_block_add_attention=bool(cfg.get("mid_block_add_attention", True)),
            time_major=True,
        )
    except KeyError as exc:
        raise MaaError(f"{src / 'vae' / 'config.json'}: no {exc.args[0]!r} field") from None
    default = inspect.signature(AutoencoderKL.__init__).parameters["scaling_factor"].default
    return vae_cfg, float(cfg.get("scaling_factor", default))


def _check_vae_architecture(vae: SpectrogramVAE, cfg: dict[str, Any], src: Path) -> None:
    """Every architectural field of the folder's VAE config equals the wrapper's."""
    ours = _public(vae.model.config)
    for key, value in _public(cfg).items():
        if key not in VAE_NOT_ARCHITECTURE and _plain(value) != _plain(ours.get(key)):
            raise MaaError(
                f"{src / 'vae' / 'config.json'}: {key}={value!r} differs from AudioLDM's "
                f"spectrogram VAE ({ours.get(key)!r}); this VAE cannot be imported"
            )


def _check_unet(unet, vae_cfg: VAEConfig, text_width: int, src: Path) -> None:
    where = src / "unet" / "config.json"
    if not takes_class_labels(unet):
        raise MaaError(
            f"{where}: class_embed_type={unet.config.class_embed_type!r}; AudioLDM's U-Net is "
            "conditioned through a projected class embedding ('simple_projection')"
        )
    if unet.config.encoder_hid_dim is not None or unet.config.addition_embed_type is not None:
        raise MaaError(f"{where}: the U-Net takes extra text inputs AudioLDM does not have")
    channels = (unet.config.in_channels, unet.config.out_channels)
    if channels != (vae_cfg.latent_channels,) * 2:
        raise MaaError(
            f"{where}: the U-Net maps {channels[0]} to {channels[1]} channels but the VAE's "
            f"latents have {vae_cfg.latent_channels}"
        )
    class_width = unet.config.projection_class_embeddings_input_dim
    if class_width != text_width:
        raise MaaError(
            f"{where}: the class embedding takes {class_width}-d vectors but text_encoder/ "
            f"projects to {text_width}"
        )


def noise_schedule(cfg: dict[str, Any], src: Path) -> NoiseSchedule:
    """The folder's training schedule; its DDIM timesteps as ``maa``'s ``--sampler ddim`` runs
    them. A setting ``maa``'s samplers would not honour is an error naming it."""
    where = src / "scheduler" / "scheduler_config.json"
    for key, assumed in SCHEDULER_ASSUMES.items():
        if key in cfg and cfg[key] != assumed:
            raise MaaError(f"{where}: {key}={cfg[key]!r} is not supported (maa uses {assumed!r})")
    prediction = cfg.get("prediction_type", "epsilon")
    if prediction not in ("epsilon", "v_prediction"):
        raise MaaError(f"{where}: prediction_type {prediction!r} is not epsilon or v_prediction")
    spacing = (cfg.get("timestep_spacing", "leading"), int(cfg.get("steps_offset", 0)))
    ddim = {("leading", 1): "compvis", ("trailing", 0): "trailing"}.get(spacing)
    if ddim is None:
        raise MaaError(
            f"{where}: timestep_spacing {spacing[0]!r} with steps_offset {spacing[1]} is not "
            "supported (maa's DDIM runs 'leading' with steps_offset 1, or 'trailing')"
        )
    return NoiseSchedule(
        num_train_timesteps=int(cfg.get("num_train_timesteps", 1000)),
        beta_start=float(cfg.get("beta_start", 0.0001)),
        beta_end=float(cfg.get("beta_end", 0.02)),
        beta_schedule=str(cfg.get("beta_schedule", "linear")),
        prediction_type=prediction,
        ddim_timesteps=ddim,
    )


def _tokenizer(src: Path, text_cfg):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src / "tokenizer"), local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MaaError(f"{src / 'tokenizer'}: could not load the tokenizer ({exc})") from exc
    if len(tokenizer) > int(text_cfg.vocab_size):
        raise MaaError(
            f"{src / 'tokenizer'}: the tokenizer has {len(tokenizer)} entries but text_encoder/ "
            f"embeds only {text_cfg.vocab_size}; they do not belong together"
        )
    return tokenizer


def _vocoder_config(src: Path) -> dict[str, Any]:
    """The vocoder's architecture, every field explicit (transformers' defaults may change)."""
    from transformers import SpeechT5HifiGanConfig

    hf = SpeechT5HifiGanConfig.from_pretrained(str(src / "vocoder"), local_files_only=True)
    return {k: _plain(getattr(hf, k)) for k in VOCODER_FIELDS}


def _max_length(folder: Path, width: int) -> int:
    """The token limit of the saved encoder, loaded as ``maa`` will load it."""
    from maa.text import load_text_encoder

    encoder = load_text_encoder(f"clap:{folder}")
    if encoder.width != width:  # the folder just written must reload as what was read
        raise MaaError(f"{folder}: the saved text encoder reloads {encoder.width}-wide")
    return encoder.max_length


def _public(config) -> dict[str, Any]:
    """A diffusers config without its private ``_class_name``-style entries, as plain JSON."""
    return {k: _plain(v) for k, v in dict(config).items() if not k.startswith("_")}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
