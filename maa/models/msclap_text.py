"""The text branch of Microsoft's CLAP (2022), Make-An-Audio's conditioning encoder.

A BERT encoder (``base``: transformers ``BertModel``, bert-base-uncased sizes) followed by the
CLAP projection (``projection``): ``e1 = W1 h`` (768 → 1024, no bias), ``e2 = dropout(W2 GELU(e1))``
(1024 → 1024, no bias), ``LayerNorm(e1 + e2)``. Make-An-Audio feeds every one of the 77 padded
token states through it, without an attention mask, and cross-attends to all of them; CLAP's own
sentence embedding is the projected ``[CLS]`` state (token 0).

Parameter names are those of the official checkpoint under ``cond_stage_model.caption_encoder``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from maa.config import Config

HEAD_WIDTH = 64  # BERT's width per attention head (768 / 12 in bert-base)


@dataclass(frozen=True)
class MSClapTextConfig(Config):
    """BERT sizes (bert-base-uncased by default), the projection width and the token count."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    projection_dim: int = 1024
    max_length: int = 77  # every caption is padded (or cut) to this many tokens

    def bert_config(self):
        from transformers import BertConfig

        return BertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
        )


class Projection(nn.Module):
    """CLAP's projection head: ``LayerNorm(W1 x + dropout(W2 GELU(W1 x)))``."""

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.linear1(x)
        return self.layer_norm(e1 + self.drop(self.linear2(F.gelu(e1))))


class MSClapTextEncoder(nn.Module):
    """Token ids ``(B, L)`` → projected token states ``(B, L, projection_dim)``."""

    def __init__(self, cfg: MSClapTextConfig) -> None:
        super().__init__()
        from transformers import BertModel

        self.cfg = cfg
        self.base = BertModel(cfg.bert_config())  # with its pooler, as the checkpoint
        self.projection = Projection(cfg.hidden_size, cfg.projection_dim)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # no attention mask: the release attends over the [PAD] states too
        return self.projection(self.base(input_ids=input_ids).last_hidden_state)
