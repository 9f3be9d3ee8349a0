"""Bundles: a folder that describes and holds a trained model.

Layout::

    BUNDLE/
      bundle.json            versions, mel preset, each component's kind, config and file
      vae.safetensors        one file per trained component (config also in its metadata)
      unet.safetensors
      train/<component>/     resumable training state, logs (not needed to use the bundle)

Pretrained parts that ship in packages (text encoder, vocoder) are *references*: a component
entry with ``"ref": "package:NAME"`` or ``"ref": "path:/abs/path"`` and no file.
Weights load with strict key and shape matching; a mismatch names the keys.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from maa import __version__
from maa.errors import BundleError
from maa.fsutil import atomic_path, is_main_process, write_json_atomic
from maa.mel import MelPreset

BUNDLE_FILE = "bundle.json"
FORMAT = "maa-bundle"
FORMAT_VERSION = 1


class Bundle:
    """A bundle folder. Create with :meth:`create`, open an existing one with :meth:`open`."""

    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        self.root = root
        self.meta = meta

    # -- opening --------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike[str], mel: MelPreset) -> Bundle:
        """Open ``root`` if it is a bundle (its mel preset must equal ``mel``), else start one."""
        root = Path(root)
        if (root / BUNDLE_FILE).is_file():
            bundle = cls.open(root)
            if bundle.mel != mel:
                raise BundleError(
                    f"{root}: bundle uses mel preset {bundle.mel.name!r} but this run uses "
                    f"{mel.name!r}; pass another --out folder or the matching --preset"
                )
            return bundle
        root.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "versions": _versions(),
            "mel": mel.to_dict(),
            "components": {},
        }
        bundle = cls(root, meta)
        bundle._write_meta()
        return bundle

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> Bundle:
        """Open an existing bundle folder, with an error that says what is missing."""
        root = Path(root)
        path = root / BUNDLE_FILE
        if not path.is_file():
            raise BundleError(
                f"{root}: not a maa bundle (no {BUNDLE_FILE}); pass a folder written by "
                "a `maa train-*` command (train-vae, train-ldm, train-clap, train-vocoder)"
            )
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BundleError(f"{path}: not valid JSON ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise BundleError(
                f"{path}: not a maa bundle description (format={meta.get('format')!r})"
            )
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise BundleError(
                f"{path}: bundle format {meta['format_version']} is newer than this maa "
                f"({__version__}) understands; upgrade maa"
            )
        return cls(root, meta)

    # -- description ------------------------------------------------------------------------
    @property
    def mel(self) -> MelPreset:
        return MelPreset.from_dict(self.meta["mel"], f"{self.root}/{BUNDLE_FILE} mel", BundleError)

    @property
    def components(self) -> dict[str, dict[str, Any]]:
        return self.meta["components"]

    def has(self, name: str) -> bool:
        return name in self.components

    def component(self, name: str) -> dict[str, Any]:
        """A component's entry; a missing one is an error that lists what the bundle has."""
        try:
            return self.components[name]
        except KeyError:
            have = ", ".join(sorted(self.components)) or "nothing"
            raise BundleError(
                f"{self.root}: bundle has no {name!r} component (it has {have}); "
                f"train one first (e.g. `maa train-{name} --bundle {self.root}`)"
            ) from None

    def config(self, name: str) -> dict[str, Any]:
        return dict(self.component(name).get("config", {}))

    # -- writing ----------------------------------------------------------------------------
    def save_module(
        self,
        name: str,
        module: nn.Module,
        kind: str,
        config: dict[str, Any],
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``module``'s weights as ``NAME.safetensors`` and record it in ``bundle.json``."""
        file = f"{name}.safetensors"
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
        meta = {"kind": kind, "config": json.dumps(config), "maa_version": __version__}
        if is_main_process():  # the ranks of a multi-process run share rank 0's files
            with atomic_path(self.root / file) as tmp:
                save_file(_unshare(tensors), str(tmp), metadata=meta)
        self.components[name] = {"kind": kind, "file": file, "config": config, **(extra or {})}
        self._write_meta()
        return self.root / file

    def set_reference(
        self, name: str, kind: str, ref: str, config: dict[str, Any] | None = None, **extra: Any
    ) -> None:
        """Record a pretrained part by reference (``package:NAME`` or ``path:/abs``)."""
        self.components[name] = {"kind": kind, "ref": ref, "config": config or {}, **extra}
        self._write_meta()

    def _write_meta(self) -> None:
        self.meta["versions"] = _versions()
        if is_main_process():
            write_json_atomic(self.root / BUNDLE_FILE, self.meta)

    # -- reading ----------------------------------------------------------------------------
    def state_dict(self, name: str) -> dict[str, torch.Tensor]:
        """The stored weights of a trained component."""
        entry = self.component(name)
        if "file" not in entry:
            raise BundleError(f"{self.root}: component {name!r} is a reference, not stored weights")
        path = self.root / entry["file"]
        if not path.is_file():
            raise BundleError(
                f"{path}: weights file of component {name!r} is missing; the bundle is incomplete"
            )
        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
        except Exception as exc:
            raise BundleError(f"{path}: not a readable safetensors file ({exc})") from exc

    def load_into(self, name: str, module: nn.Module) -> nn.Module:
        """Load component ``name`` into ``module`` with strict key and shape matching."""
        load_strict(module, self.state_dict(name), f"{self.root / self.component(name)['file']}")
        return module


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(state)`` that names missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k} {tuple(state[k].shape)} vs expected {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    found = {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches": shapes}
    parts = [f"{what} {_few(keys)}" for what, keys in found.items() if keys]
    if parts:
        raise BundleError(
            f"{source}: weights do not match the model built from its config: "
            + "; ".join(parts)
            + ". The file belongs to a different model or preset."
        )
    module.load_state_dict(state, strict=True)


def _few(items: list[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" (+{len(items) - n} more)" if len(items) > n else "")


def _unshare(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory; give tied weights their own copy."""
    seen: dict[int, str] = {}
    out = {}
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.setdefault(ptr, k)
    return out


def _versions() -> dict[str, str]:
    return {"maa": __version__, "torch": torch.__version__, "python": platform.python_version()}
