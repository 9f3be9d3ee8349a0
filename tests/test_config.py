"""Config dataclasses ⇄ JSON: round trips, tuple restoration, clear errors, shipped bundles."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from maa.bundle import Bundle
from maa.errors import BundleError, MaaError
from maa.mel import MEL_PRESETS, MelPreset
from maa.models.clap import CLAP_PRESETS, ClapConfig
from maa.models.discriminator import DiscConfig
from maa.models.hifigan import HIFIGAN_PRESETS, HiFiGANConfig
from maa.models.panns import PANNS_PRESETS
from maa.models.unet import UNET_PRESETS, NoiseSchedule, UNetConfig
from maa.models.vae import VAE_PRESETS, VAEConfig, build_vae, load_vae
from maa.models.vggish import VGGISH_PRESETS
from maa.stages.clap import TRAIN_PRESETS as CLAP_TRAIN
from maa.stages.ldm_data import LDMConfig
from maa.stages.vae import TRAIN_PRESETS as VAE_TRAIN
from maa.stages.vocoder import VocoderTrainSettings
from maa.trainer import TrainConfig

ASSETS = Path(__file__).resolve().parents[1] / "maa" / "assets"
PRESETS = [
    *VAE_PRESETS.values(),
    *UNET_PRESETS.values(),
    *CLAP_PRESETS.values(),
    *MEL_PRESETS.values(),
    *HIFIGAN_PRESETS.values(),
    *VGGISH_PRESETS.values(),
    *PANNS_PRESETS.values(),
    *VAE_TRAIN.values(),
    *CLAP_TRAIN.values(),
    NoiseSchedule(prediction_type="v_prediction"),
    DiscConfig(),
    LDMConfig(),
    VocoderTrainSettings(init="default"),
    TrainConfig(grad_clip=None, ema_decay=0.999),
]


@pytest.mark.parametrize("cfg", PRESETS, ids=lambda c: type(c).__name__)
def test_every_preset_round_trips_through_json(cfg):
    d = cfg.to_dict()
    text = json.dumps(d)
    assert json.loads(text) == d  # plain JSON: lists, not tuples
    again = type(cfg).from_dict(json.loads(text))
    assert again == cfg and hash(again) == hash(cfg)  # tuples back, so still hashable


def test_tuples_are_restored_from_the_field_types():
    unet = UNetConfig.from_dict({**UNetConfig().to_dict(), "cross_attn_levels": [1, 0]})
    assert unet.cross_attn_levels == (True, False)
    assert all(type(x) is bool for x in unet.cross_attn_levels)
    tiny = HIFIGAN_PRESETS["tiny"].to_dict()
    assert tiny["resblock_dilation_sizes"] == [[1, 3], [1, 3]]
    hifi = HiFiGANConfig.from_dict(tiny)
    assert hifi.resblock_dilation_sizes == ((1, 3), (1, 3))
    betas = VocoderTrainSettings.from_dict({"betas": [0.5, 0.9]}).betas
    assert betas == (0.5, 0.9) and isinstance(betas, tuple)
    assert VocoderTrainSettings().to_dict()["betas"] == [0.8, 0.99]


def test_missing_fields_take_defaults_and_required_ones_are_named():
    assert VAEConfig.from_dict({"latent_channels": 8}) == VAEConfig(latent_channels=8)
    partial = {k: v for k, v in MEL_PRESETS["paper"].to_dict().items() if k != "hop_length"}
    with pytest.raises(MaaError, match=r"MelPreset is incomplete .*hop_length"):
        MelPreset.from_dict(partial)


def test_unknown_fields_are_rejected_by_name():
    data = {**ClapConfig().to_dict(), "attention": True, "bands": 3}
    with pytest.raises(MaaError, match=r"ClapConfig has unknown field\(s\) attention, bands"):
        ClapConfig.from_dict(data)
    with pytest.raises(MaaError, match=r"^x\.json: NoiseSchedule must be a JSON object"):
        NoiseSchedule.from_dict([1, 2], "x.json")


def test_bundle_config_errors_name_the_bundle_and_field(tmp_path):
    bundle = Bundle.create(tmp_path / "b", MEL_PRESETS["default"])
    cfg = VAE_PRESETS["tiny"]
    bundle.save_module("vae", build_vae(cfg), "vae", {**cfg.to_dict(), "dropout": 0.1})
    with pytest.raises(BundleError, match=r"component 'vae': VAEConfig has unknown .* dropout"):
        load_vae(Bundle.open(tmp_path / "b"))
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    meta["mel"]["fmax_hz"] = 8000
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"bundle\.json mel: MelPreset .* fmax_hz"):
        _ = Bundle.open(tmp_path / "b").mel


@pytest.mark.parametrize("name", ["default_bundle", "clap"])
def test_shipped_bundles_load_and_write_back_the_same_json(name):
    bundle = Bundle.open(ASSETS / name)
    assert bundle.mel.to_dict() == bundle.meta["mel"]
    kinds = {"vae": VAEConfig, "unet": UNetConfig, "clap": ClapConfig}

    def round_trips(cls, config: dict) -> bool:
        """Written back unchanged; fields added since the bundle was written take defaults."""
        back = cls.from_dict(config).to_dict()
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        added = {k: v for k, v in back.items() if k not in config}
        plain = {k: list(d) if isinstance(d, tuple) else d for k, d in defaults.items()}
        return {k: back[k] for k in config} == config and all(
            v == plain[k] for k, v in added.items()
        )

    checked = 0
    for entry in bundle.components.values():
        if entry["kind"] in kinds:
            assert round_trips(kinds[entry["kind"]], entry["config"])
            checked += 1
        if "schedule" in entry:
            assert round_trips(NoiseSchedule, entry["schedule"])
    assert checked == (2 if name == "default_bundle" else 1)
