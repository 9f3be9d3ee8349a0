"""The architecture of an official Make-An-Audio checkpoint: read from its tensors' shapes, or
from its YAML config (``txt2audio_args.yaml``) and checked against those shapes.

Both give the same *facts* (``unet.model_channels``, ``vae.ch_mult``, …) in one order, so a config
that disagrees with the checkpoint is reported at its first differing fact, with the tensor that
shows the checkpoint's value. Two numbers no shape reveals come from the config or, without one,
from the release: the U-Net's 8 attention heads and BERT's 64-wide heads (bert-base-uncased).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from maa.errors import MaaError
from maa.models.msclap_text import HEAD_WIDTH, MSClapTextConfig
from maa.models.unet import NoiseSchedule, UNetConfig
from maa.models.vae import VAEConfig

UNET, VAE, TEXT = (
    "model.diffusion_model.",
    "first_stage_model.",
    "cond_stage_model.caption_encoder.",
)
RELEASE_HEADS = 8  # txt2audio_args.yaml: num_heads
RELEASE_SCHEDULE = {"linear_start": 0.00085, "linear_end": 0.012, "timesteps": 1000}
Facts = dict[str, tuple[Any, str]]  # fact → (value, the tensor or config entry that shows it)


@dataclass(frozen=True)
class Architecture:
    """Everything the bundle's components are built from."""

    unet: UNetConfig
    vae: VAEConfig
    text: MSClapTextConfig
    schedule: NoiseSchedule
    source: str  # "inferred from the checkpoint" or the config path


def _shape(sd: dict[str, torch.Tensor], key: str) -> tuple[int, ...]:
    if key not in sd:
        raise MaaError(f"the checkpoint has no {key}, which every Make-An-Audio model has")
    return tuple(sd[key].shape)


def _indices(sd: dict[str, torch.Tensor], pattern: str) -> list[int]:
    """Sorted distinct integers captured by ``pattern`` (one group) over the keys."""
    rx = re.compile(pattern)
    return sorted({int(m[1]) for k in sd if (m := rx.match(k))})


def shape_facts(sd: dict[str, torch.Tensor]) -> Facts:
    """The architecture the tensors of ``sd`` (full checkpoint keys) imply."""
    facts: Facts = {}
    conv_in = f"{UNET}input_blocks.0.0.weight"
    ch, cin = _shape(sd, conv_in)[:2]
    kinds = []  # "R" res block (+ attention) or "D" downsampler, input_blocks 1…
    for i in _indices(sd, rf"^{re.escape(UNET)}input_blocks\.(\d+)\."):
        if i:
            kinds.append("D" if f"{UNET}input_blocks.{i}.0.op.weight" in sd else "R")
    runs = "".join(kinds).split("D")
    layers = len(runs[0])
    if not layers or any(len(r) != layers for r in runs):
        raise MaaError(
            f"the U-Net's input blocks ({''.join(kinds)}: R res block, D downsampler) are not "
            "levels of equal depth, as CompVis' UNetModel builds them"
        )
    mult, attn = [], []
    for level in range(len(runs)):
        first = 1 + level * (layers + 1)
        out = f"{UNET}input_blocks.{first}.0.out_layers.3.weight"
        mult.append(_shape(sd, out)[0] // ch)
        attn.append(f"{UNET}input_blocks.{first}.1.proj_in.weight" in sd)
    mid = f"{UNET}middle_block.1."
    proj_in = _shape(sd, f"{mid}proj_in.weight")
    if len(proj_in) != 4:
        raise MaaError(
            f"{mid}proj_in.weight is {proj_in}: a linear transformer projection, not the 1×1 "
            "conv of Make-An-Audio's U-Net (use_linear_in_transformer is not supported)"
        )
    depth = len(_indices(sd, rf"^{re.escape(mid)}transformer_blocks\.(\d+)\."))
    facts["unet.in_channels"] = (cin, conv_in)
    facts["unet.model_channels"] = (ch, conv_in)
    facts["unet.channel_mult"] = (tuple(mult), f"{UNET}input_blocks.*.0.out_layers.3.weight")
    facts["unet.num_res_blocks"] = (layers, f"{UNET}input_blocks.*")
    facts["unet.attention_levels"] = (tuple(attn), f"{UNET}input_blocks.*.1.proj_in.weight")
    facts["unet.transformer_depth"] = (depth, f"{mid}transformer_blocks.*")
    to_k = f"{mid}transformer_blocks.0.attn2.to_k.weight"
    facts["unet.context_dim"] = (_shape(sd, to_k)[1], to_k)
    facts["unet.out_channels"] = (_shape(sd, f"{UNET}out.2.weight")[0], f"{UNET}out.2.weight")

    enc_in = f"{VAE}encoder.conv_in.weight"
    vch, vin = _shape(sd, enc_in)[:2]
    levels = _indices(sd, rf"^{re.escape(VAE)}encoder\.down\.(\d+)\.")
    blocks = _indices(sd, rf"^{re.escape(VAE)}encoder\.down\.0\.block\.(\d+)\.")
    vmult = [_shape(sd, f"{VAE}encoder.down.{i}.block.0.conv2.weight")[0] // vch for i in levels]
    vattn = [f"{VAE}encoder.down.{i}.attn.0.q.weight" in sd for i in levels]
    facts["vae.in_channels"] = (vin, enc_in)
    facts["vae.ch"] = (vch, enc_in)
    facts["vae.ch_mult"] = (tuple(vmult), f"{VAE}encoder.down.*.block.0.conv2.weight")
    facts["vae.num_res_blocks"] = (len(blocks), f"{VAE}encoder.down.0.block.*")
    facts["vae.attention_levels"] = (tuple(vattn), f"{VAE}encoder.down.*.attn.0.q.weight")
    conv_out = f"{VAE}encoder.conv_out.weight"
    facts["vae.z_channels"] = (_shape(sd, conv_out)[0] // 2, conv_out)
    quant = f"{VAE}quant_conv.weight"
    facts["vae.embed_dim"] = (_shape(sd, quant)[0] // 2, quant)
    dec_out = f"{VAE}decoder.conv_out.weight"
    facts["vae.out_ch"] = (_shape(sd, dec_out)[0], dec_out)

    words = f"{TEXT}base.embeddings.word_embeddings.weight"
    vocab, hidden = _shape(sd, words)
    layers_t = _indices(sd, rf"^{re.escape(TEXT)}base\.encoder\.layer\.(\d+)\.")
    inter = f"{TEXT}base.encoder.layer.0.intermediate.dense.weight"
    pos = f"{TEXT}base.embeddings.position_embeddings.weight"
    types = f"{TEXT}base.embeddings.token_type_embeddings.weight"
    proj = f"{TEXT}projection.linear1.weight"
    facts["text.vocab_size"] = (vocab, words)
    facts["text.hidden_size"] = (hidden, words)
    facts["text.num_hidden_layers"] = (len(layers_t), f"{TEXT}base.encoder.layer.*")
    facts["text.intermediate_size"] = (_shape(sd, inter)[0], inter)
    facts["text.max_position_embeddings"] = (_shape(sd, pos)[0], pos)
    facts["text.type_vocab_size"] = (_shape(sd, types)[0], types)
    facts["text.projection_dim"] = (_shape(sd, proj)[0], proj)
    return facts


def read_config(path: Path) -> dict[str, Any]:
    """The YAML file ``path`` as a dict, with clear errors."""
    import yaml

    if not path.is_file():
        raise MaaError(f"--config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MaaError(f"--config {path}: not readable YAML ({exc})") from None
    if not isinstance(data, dict):
        raise MaaError(f"--config {path}: expected a mapping at the top, got {type(data).__name__}")
    return data


def _get(tree: dict[str, Any], dotted: str, path: Path, default: Any = ...) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node or node[part] is None:
            if default is not ...:
                return default
            raise MaaError(f"--config {path}: no {dotted}; is this Make-An-Audio's config?")
        node = node[part]
    return node


def config_facts(tree: dict[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(facts as in :func:`shape_facts`, the other settings) of a Make-An-Audio YAML config."""
    p = _get(tree, "model.params", path)
    targets = {
        "model.params.unet_config.target": "openaimodel.UNetModel",
        "model.params.first_stage_config.target": "autoencoder.AutoencoderKL",
        "model.params.cond_stage_config.target": "FrozenCLAPEmbedder",
    }
    for key, expected in targets.items():
        found = str(_get(tree, key, path))
        if expected not in found:
            raise MaaError(
                f"--config {path}: {key} is {found!r}, but Make-An-Audio uses …{expected}; "
                "this importer reads Make-An-Audio (v1) configs only"
            )
    u = _get(p, "unet_config.params", path)
    dd = _get(p, "first_stage_config.params.ddconfig", path)
    mult = tuple(int(m) for m in u["channel_mult"])
    res = {int(r) for r in u.get("attention_resolutions", [])}
    vmult = tuple(int(m) for m in dd["ch_mult"])
    vattn, curr = [], int(dd["resolution"])
    for _ in vmult:
        vattn.append(curr in {int(r) for r in dd.get("attn_resolutions", [])})
        curr //= 2
    facts = {
        "unet.in_channels": int(u["in_channels"]),
        "unet.model_channels": int(u["model_channels"]),
        "unet.channel_mult": mult,
        "unet.num_res_blocks": int(u["num_res_blocks"]),
        "unet.attention_levels": tuple(2**i in res for i in range(len(mult))),
        "unet.transformer_depth": int(u.get("transformer_depth", 1)),
        "unet.context_dim": int(u["context_dim"]),
        "unet.out_channels": int(u["out_channels"]),
        "vae.in_channels": int(dd["in_channels"]),
        "vae.ch": int(dd["ch"]),
        "vae.ch_mult": vmult,
        "vae.num_res_blocks": int(dd["num_res_blocks"]),
        "vae.attention_levels": tuple(vattn),
        "vae.z_channels": int(dd["z_channels"]),
        "vae.embed_dim": int(_get(p, "first_stage_config.params.embed_dim", path)),
        "vae.out_ch": int(dd["out_ch"]),
    }
    heads, head_ch = int(u.get("num_heads", -1)), int(u.get("num_head_channels", -1))
    if head_ch > 0:
        per_level = {mult_i * facts["unet.model_channels"] // head_ch for mult_i in mult}
        if len(per_level) != 1:
            raise MaaError(
                f"--config {path}: num_head_channels {head_ch} gives a different head count per "
                "level; maa's U-Net config has one head count"
            )
        heads = per_level.pop()
    parameterization = str(p.get("parameterization", "eps"))
    if parameterization not in ("eps", "v"):
        raise MaaError(f"--config {path}: parameterization {parameterization!r} is not eps or v")
    if str(p.get("conditioning_key", "crossattn")) != "crossattn":
        raise MaaError(f"--config {path}: conditioning_key must be crossattn")
    other = {
        "num_heads": heads,
        "linear_start": float(p.get("linear_start", 1e-4)),
        "linear_end": float(p.get("linear_end", 2e-2)),
        "timesteps": int(p.get("timesteps", 1000)),
        "prediction_type": "epsilon" if parameterization == "eps" else "v_prediction",
        "scale_factor": float(p.get("scale_factor", 1.0)),
        "mel_dim": int(p.get("mel_dim", 10)),
    }
    return facts, other


def first_mismatch(config: dict[str, Any], shapes: Facts, path: Path) -> None:
    """Raise at the first fact where ``config`` disagrees with the checkpoint's ``shapes``."""
    for key, (value, evidence) in shapes.items():
        if key in config and config[key] != value:
            raise MaaError(
                f"--config {path} does not describe this checkpoint: it gives {key} = "
                f"{_show(config[key])}, but the checkpoint has {_show(value)} (from {evidence}). "
                "Pass the config that came with the checkpoint, or leave --config out to infer "
                "the architecture from the checkpoint"
            )


def _show(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def architecture(facts: dict[str, Any], other: dict[str, Any], source: str) -> Architecture:
    """The components' configs from the facts and the other settings."""
    model_ch = facts["unet.model_channels"]
    if facts["vae.z_channels"] != facts["vae.embed_dim"]:
        raise MaaError(
            f"the autoencoder's z_channels ({facts['vae.z_channels']}) differ from its embed_dim "
            f"({facts['vae.embed_dim']}); diffusers' AutoencoderKL needs them equal"
        )
    if facts["vae.in_channels"] != 1 or facts["vae.out_ch"] != 1:
        raise MaaError("the autoencoder does not take one-channel mel images")
    down = 2 ** (len(facts["vae.ch_mult"]) - 1)
    if other["mel_dim"] * down != 80:
        raise MaaError(
            f"the config's mel_dim {other['mel_dim']} × the VAE's ×{down} downsampling is not "
            "the 80 mel bins of Make-An-Audio's `paper` mel preset"
        )
    unet = UNetConfig(
        block_out_channels=tuple(m * model_ch for m in facts["unet.channel_mult"]),
        layers_per_block=facts["unet.num_res_blocks"],
        cross_attn_levels=facts["unet.attention_levels"],
        num_heads=other["num_heads"],
        transformer_layers=facts["unet.transformer_depth"],
        cross_attention_dim=facts["unet.context_dim"],
        in_channels=facts["unet.in_channels"],
        out_channels=facts["unet.out_channels"],
        norm_num_groups=32,  # CompVis' GroupNorm32
    )
    vae = VAEConfig(
        block_out_channels=tuple(m * facts["vae.ch"] for m in facts["vae.ch_mult"]),
        layers_per_block=facts["vae.num_res_blocks"],
        latent_channels=facts["vae.z_channels"],
        norm_num_groups=32,
        mid_block_add_attention=True,
        attention_levels=facts["vae.attention_levels"],
    )
    hidden = facts["text.hidden_size"]
    text = MSClapTextConfig(
        vocab_size=facts["text.vocab_size"],
        hidden_size=hidden,
        num_hidden_layers=facts["text.num_hidden_layers"],
        num_attention_heads=max(1, hidden // HEAD_WIDTH),
        intermediate_size=facts["text.intermediate_size"],
        max_position_embeddings=facts["text.max_position_embeddings"],
        type_vocab_size=facts["text.type_vocab_size"],
        projection_dim=facts["text.projection_dim"],
    )
    schedule = NoiseSchedule(
        num_train_timesteps=other["timesteps"],
        beta_start=other["linear_start"],
        beta_end=other["linear_end"],
        beta_schedule="scaled_linear",  # LDM's "linear": linspace of √β, squared
        prediction_type=other["prediction_type"],
        ddim_timesteps="compvis",
    )
    return Architecture(unet, vae, text, schedule, source)


def release_settings() -> dict[str, Any]:
    """The settings of the release's txt2audio_args.yaml that no tensor shape shows."""
    return {"num_heads": RELEASE_HEADS, "prediction_type": "epsilon", "scale_factor": 1.0,
            "mel_dim": 10, **RELEASE_SCHEDULE}  # fmt: skip


def check_schedule(sd: dict[str, torch.Tensor], schedule: NoiseSchedule, source: str) -> None:
    """The checkpoint's stored ``betas`` (when present) must be the schedule's."""
    betas = sd.get("betas")
    if betas is None:
        return
    n, a, b = schedule.num_train_timesteps, schedule.beta_start, schedule.beta_end
    expected = torch.linspace(a**0.5, b**0.5, n, dtype=torch.float64) ** 2
    if betas.numel() != n or not torch.allclose(betas.double(), expected, rtol=1e-4, atol=0):
        first = float(betas.flatten()[0]) if betas.numel() else float("nan")
        raise MaaError(
            f"the checkpoint's noise schedule (betas: {betas.numel()} steps from {first:.6g} to "
            f"{float(betas.flatten()[-1]):.6g}) is not the one {source} gives ({n} steps, "
            f"linear_start {a}, linear_end {b}, scaled linear)"
        )
