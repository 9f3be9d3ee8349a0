"""Shared fixtures: synthetic audio folders and manifests (tiny, CPU only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from maa.testing import write_clip_folder

# Tiny models gain nothing from intra-op threads, and OpenMP workers spin-wait badly when the
# cores are shared with other jobs (a tiny U-Net step measured 37x slower with 2 threads).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    """10 one-second clips at 22.05 kHz in five labelled sub-folders."""
    root = tmp_path_factory.mktemp("clips")
    write_clip_folder(root, sr=22050, seconds=1.0, per_kind=2)
    return root


@pytest.fixture(scope="session")
def clip_manifest(clip_dir, tmp_path_factory) -> Path:
    """A manifest of :func:`clip_dir` with captions from the folder names; 2 valid clips."""
    from maa.manifest import write_manifest
    from maa.stages.manifest_ops import scan

    out = tmp_path_factory.mktemp("manifest") / "clips.parquet"
    df, failures = scan(clip_dir, out.parent)
    assert failures.empty
    df["caption"] = [Path(p).parent.name.replace("_", " ") for p in df["audio_path"]]
    df["split"] = ["valid" if i in (0, 5) else "train" for i in range(len(df))]
    write_manifest(df, out)
    return out
