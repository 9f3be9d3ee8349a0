"""Importers: models released by other toolkits → ordinary ``maa`` bundles (``maa import …``).

An importer reads the files as their authors released them, nothing downloaded, loads every
tensor into the ``maa`` component it belongs to (a key left over either way, or of the wrong
shape, is an error that names it) and writes a bundle of safetensors plus ``bundle.json`` that
every command (``generate``, ``vocode``, ``evaluate``, ``reconstruct``) uses unchanged. The bundle
is assembled in a hidden folder beside the output and renamed into place at the end, so a failed
import leaves nothing behind.

* :mod:`maa.importers.audioldm` — a diffusers-format AudioLDM folder.
* :mod:`maa.importers.make_an_audio` — the official Make-An-Audio release (Lightning checkpoint,
  config, BigVGAN folder), with :mod:`~maa.importers.compvis_keys` and
  :mod:`~maa.importers.safe_load`.

The helpers here are shared by every importer.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import nn

from maa.bundle import load_strict
from maa.errors import MaaError


@dataclass
class ImportSummary:
    """What an import wrote: the bundle folder, the source, each component's tensor and parameter
    counts, buffers the source did not hold (rebuilt as the model defines them, e.g. position
    ids) and notes for the user."""

    out: Path
    source: Path
    tensors: dict[str, int] = field(default_factory=dict)
    parameters: dict[str, int] = field(default_factory=dict)
    filled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or unreadable file is an error naming ``what``."""
    if not path.is_file():
        raise MaaError(f"{path.parent}: {what} has no {path.name}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MaaError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise MaaError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_weights(
    folder: Path, stems: tuple[str, ...], what: str
) -> tuple[dict[str, torch.Tensor], Path]:
    """The state dict saved in ``folder`` under the first of ``stems`` found, as
    ``STEM.safetensors``, sharded ``STEM.safetensors.index.json`` or ``STEM.bin`` (read with
    ``weights_only=True``: tensors only), and the file it came from."""
    tried = []
    for stem in stems:
        single, index, pickle = (folder / f"{stem}{s}" for s in (".safetensors",
                                 ".safetensors.index.json", ".bin"))  # fmt: skip
        tried += [single.name, pickle.name]
        if single.is_file():
            return _read_safetensors([single]), single
        if index.is_file():
            shards = sorted(set(read_json(index, what).get("weight_map", {}).values()))
            missing = [s for s in shards if not (folder / s).is_file()]
            if not shards or missing:
                listed = ", ".join(missing) or "none listed"
                raise MaaError(f"{index}: shard file(s) missing: {listed}")
            return _read_safetensors([folder / s for s in shards]), index
        if pickle.is_file():
            try:
                state = torch.load(pickle, map_location="cpu", weights_only=True)
            except Exception as exc:  # refused globals, a truncated file …: unusable
                raise MaaError(
                    f"{pickle}: could not read it as plain weights ({exc}); only tensors are "
                    "loaded from pickles (weights_only=True)"
                ) from exc
            return state, pickle
    raise MaaError(
        f"{folder}: {what} has no weights (looked for {', '.join(tried)}); the folder is incomplete"
    )


def _read_safetensors(files: list[Path]) -> dict[str, torch.Tensor]:
    state = {}
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as f:
                state.update({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118
        except Exception as exc:
            raise MaaError(f"{path}: not a readable safetensors file ({exc})") from exc
    return state


def load_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Load ``state`` into ``module`` with strict key and shape matching (errors name the keys),
    except that *buffers* absent from ``state`` keep the values the module was built with: files
    written by older library versions lack buffers such as ``token_type_ids`` that are constants
    of the architecture. Returns the names of those buffers; a missing parameter is an error."""
    params = {name for name, _ in module.named_parameters()}
    own = module.state_dict()
    filled = sorted(k for k in own if k not in state and k not in params)
    load_strict(module, {**{k: own[k] for k in filled}, **state}, source)
    return filled


@contextmanager
def staged_bundle(out: Path) -> Iterator[Path]:
    """A hidden folder beside ``out`` to write the bundle into; it becomes ``out`` when the block
    succeeds and is removed when it fails. ``out`` must not exist or be an empty folder."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MaaError(
            f"{out} already exists and is not an empty folder; pass a new -o folder (an import "
            "never overwrites)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.importing-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
