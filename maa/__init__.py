"""maa: Make-An-Audio as a staged command-line toolkit.

``from maa import Generator`` loads that name's module (and torch) on first use (PEP 562), so a
bare ``import maa`` stays light.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("maa")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

_LAZY = {"Bundle": "maa.bundle", "GeneratedAudio": "maa.generate", "Generator": "maa.generate",
         "SamplingSettings": "maa.generate"}  # fmt: skip
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'maa' has no attribute {name!r}")
    return getattr(import_module(_LAZY[name]), name)
