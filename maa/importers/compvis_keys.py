"""Parameter names of CompVis latent-diffusion models → diffusers', one key at a time.

:func:`unet_key` maps ``openaimodel.UNetModel`` keys (``input_blocks.i.j.…``,
``middle_block.j.…``, ``output_blocks.i.j.…``) onto ``UNet2DConditionModel``'s; :func:`vae_key`
maps the LDM ``AutoencoderKL`` (``encoder.down.i.block.j.…``, ``….attn.j.…``, ``mid.block_1``…)
onto diffusers' ``AutoencoderKL`` *including* the attention inside the resolution levels
(``attn_resolutions``), which diffusers' own single-file converter leaves out. Each returns
``None`` for a key that has no place in the layout, so the caller can name every leftover.
The transformer blocks inside the U-Net keep their names (``transformer_blocks.0.attn1.to_q`` …)
in both libraries; the VAE's 1×1-conv attention projections become linear layers
(:func:`vae_tensor`).
"""

from __future__ import annotations

import re

import torch

# CompVis ResBlock (U-Net) sub-modules → diffusers ResnetBlock2D
UNET_RESNET = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
UNET_PLAIN = {
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "input_blocks.0.0": "conv_in",
    "out.0": "conv_norm_out",
    "out.2": "conv_out",
}
# LDM autoencoder ResnetBlock / AttnBlock sub-modules → diffusers
VAE_RESNET = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
              "nin_shortcut": "conv_shortcut"}  # fmt: skip
VAE_ATTN = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
VAE_PLAIN = {
    "encoder.conv_in": "encoder.conv_in",
    "encoder.norm_out": "encoder.conv_norm_out",
    "encoder.conv_out": "encoder.conv_out",
    "decoder.conv_in": "decoder.conv_in",
    "decoder.norm_out": "decoder.conv_norm_out",
    "decoder.conv_out": "decoder.conv_out",
    "quant_conv": "quant_conv",
    "post_quant_conv": "post_quant_conv",
}
PARAM = re.compile(r"^(?P<module>.+)\.(?P<param>weight|bias)$")


def _rename(table: dict[str, str], rest: str) -> str | None:
    """``rest`` (``module.param``) with its module renamed by ``table``; None if not listed."""
    m = PARAM.match(rest)
    if m is None or m["module"] not in table:
        return None
    return f"{table[m['module']]}.{m['param']}"


def unet_key(key: str, layers: int, attn: tuple[bool, ...]) -> str | None:
    """The diffusers name of U-Net parameter ``key`` (without ``model.diffusion_model.``), for
    ``layers`` res blocks per level and cross-attention at the levels flagged in ``attn``."""
    levels = len(attn)
    plain = _rename(UNET_PLAIN, key)
    if plain is not None:
        return plain
    m = re.match(r"^(input_blocks|middle_block|output_blocks)\.(\d+)\.(?:(\d+)\.)?(.+)$", key)
    if m is None:
        return None
    part, i, j, rest = m[1], int(m[2]), m[3], m[4]
    if part == "middle_block":
        if j is not None:  # middle_block.i.<module> has no second index
            return None
        if i in (0, 2):
            return _sub(f"mid_block.resnets.{i // 2}", UNET_RESNET, rest)
        return f"mid_block.attentions.0.{rest}" if i == 1 else None
    if j is None:
        return None
    j = int(j)
    if part == "input_blocks":
        level, pos = divmod(i - 1, layers + 1)
        if i == 0 or level >= levels:
            return None
        if pos == layers:  # the downsampler closing the level
            ok = level < levels - 1 and j == 0 and rest.startswith("op.")
            return f"down_blocks.{level}.downsamplers.0.conv.{rest[3:]}" if ok else None
        if j == 0:
            return _sub(f"down_blocks.{level}.resnets.{pos}", UNET_RESNET, rest)
        return f"down_blocks.{level}.attentions.{pos}.{rest}" if j == 1 and attn[level] else None
    up, pos = divmod(i, layers + 1)
    if up >= levels:
        return None
    level = levels - 1 - up
    if j == 0:
        return _sub(f"up_blocks.{up}.resnets.{pos}", UNET_RESNET, rest)
    if j == 1 and attn[level]:
        return f"up_blocks.{up}.attentions.{pos}.{rest}"
    upsampler = 2 if attn[level] else 1
    if j == upsampler and pos == layers and level > 0 and rest.startswith("conv."):
        return f"up_blocks.{up}.upsamplers.0.conv.{rest[5:]}"
    return None


def _sub(prefix: str, table: dict[str, str], rest: str) -> str | None:
    renamed = _rename(table, rest)
    return f"{prefix}.{renamed}" if renamed is not None else None


def vae_key(key: str, levels: int, attn: tuple[bool, ...]) -> str | None:
    """The diffusers ``AutoencoderKL`` name of LDM autoencoder parameter ``key`` (without
    ``first_stage_model.``), for ``levels`` resolution levels with attention where ``attn``."""
    plain = _rename(VAE_PLAIN, key)
    if plain is not None:
        return plain
    m = re.match(r"^(encoder|decoder)\.mid\.(block_1|attn_1|block_2)\.(.+)$", key)
    if m is not None:
        side, block, rest = m[1], m[2], m[3]
        if block == "attn_1":
            return _sub(f"{side}.mid_block.attentions.0", VAE_ATTN, rest)
        return _sub(f"{side}.mid_block.resnets.{int(block[-1]) - 1}", VAE_RESNET, rest)
    m = re.match(r"^(encoder\.down|decoder\.up)\.(\d+)\.(.+)$", key)
    if m is None:
        return None
    encoder, level, rest = m[1] == "encoder.down", int(m[2]), m[3]
    if level >= levels:
        return None
    # the decoder's up.0 is its last (full-resolution) level: diffusers counts from the bottom
    block = f"encoder.down_blocks.{level}" if encoder else f"decoder.up_blocks.{levels - 1 - level}"
    m = re.match(r"^(block|attn)\.(\d+)\.(.+)$", rest)
    if m is not None:
        if m[1] == "block":
            return _sub(f"{block}.resnets.{m[2]}", VAE_RESNET, m[3])
        return _sub(f"{block}.attentions.{m[2]}", VAE_ATTN, m[3]) if attn[level] else None
    resample = "downsample" if encoder else "upsample"
    last = level == (levels - 1 if encoder else 0)  # no resampling at the bottom/top level
    m = re.match(rf"^{resample}\.conv\.(weight|bias)$", rest)
    if m is None or last:
        return None
    return f"{block}.{resample}rs.0.conv.{m[1]}"


def vae_tensor(target: str, value: torch.Tensor) -> torch.Tensor:
    """The LDM attention's 1×1 convs ``(C, C, 1, 1)`` as diffusers' linear ``(C, C)``."""
    linear = target.endswith(".weight") and not target.endswith("group_norm.weight")
    if ".attentions." in target and value.dim() == 4 and linear:
        return value.reshape(value.shape[0], value.shape[1])
    return value
