"""maa: Make-An-Audio as a staged command-line toolkit."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("maa")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__"]
