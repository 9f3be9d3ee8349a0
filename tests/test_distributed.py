"""Multi-process training on CPU (gloo), as users with several GPUs run it first: every
``train-*`` command under ``torchrun --nproc_per_node 2`` keeps the ranks' parameters identical,
lets only rank 0 write, prints one summary, resumes, and — where the algorithm allows it —
equals a single-process run with the same global batch.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maa.bundle import Bundle
from maa.mel import get_mel_preset
from maa.models.vae import VAE_PRESETS, build_vae

LAUNCH = Path(__file__).with_name("ddp_launch.py")
PER_RANK = 2  # batch per process; the single-process reference uses 2 × PER_RANK

# command → (arguments, output option, does one process with the doubled batch compute the
# same update?). VAE and vocoder draw per-step randomness (posterior samples, discriminator
# windows, segment offsets) from each process's RNG, and CLAP's contrastive loss sees only the
# process's own negatives, so only the LDM, whose per-item randomness is keyed by item index,
# is equal to the single-process run.
COMMANDS = {
    "train-vae": (["--preset", "tiny", "--crop-frames", "16"], "--out", False),
    "train-clap": (["--preset", "tiny"], "--out", False),
    "train-vocoder": (["--preset", "tiny", "--mel", "paper", "--segment-frames", "4"], "--out", 0),
    "train-ldm": (["--preset", "tiny", "--crop-seconds", "0.28", "--ema", "0"], "--bundle", True),
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: str, manifest: Path, out: Path, record: Path, procs: int, batch: int,
         steps: int, resume: bool = False) -> str:  # fmt: skip
    args, out_opt, _ = COMMANDS[command]
    record.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}",
           f"--master_port={_port()}", str(LAUNCH), command, "--manifest", str(manifest),
           out_opt, str(out), *args, "--batch-size", str(batch), "--max-steps", str(steps),
           "--ckpt-every", "2", "--seed", "5", "--device", "cpu"]  # fmt: skip
    if resume:
        cmd.append("--resume")
    env = {**os.environ, "MAA_TEST_RECORD": str(record), "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _vae_bundle(root: Path) -> Path:
    torch.manual_seed(0)
    bundle = Bundle.create(root, get_mel_preset("default"))
    cfg = VAE_PRESETS["tiny"]
    bundle.save_module("vae", build_vae(cfg), "vae", cfg.to_dict())
    return root


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """20 captioned one-second clips, all in the train split."""
    from maa.manifest import write_manifest
    from maa.stages.manifest_ops import scan
    from maa.testing import write_clip_folder

    root = tmp_path_factory.mktemp("ddp")
    write_clip_folder(root / "clips", sr=22050, seconds=1.0, per_kind=4)
    df, _ = scan(root / "clips", root)
    df["caption"] = [Path(p).parent.name.replace("_", " ") for p in df["audio_path"]]
    df["split"] = "train"
    write_manifest(df, root / "m.parquet")
    return root / "m.parquet"


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
def test_two_processes_train_like_one(command, manifest, tmp_path):
    out = tmp_path / "two"
    if command == "train-ldm":
        _vae_bundle(out)
    log = _run(command, manifest, out, tmp_path / "rec", 2, PER_RANK, 4)
    r0 = torch.load(tmp_path / "rec" / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rec" / "rank1.pt", weights_only=True)
    # gradients are synchronised: both ranks end with the same weights
    assert r0["params"].keys() == r1["params"].keys()
    for k, v in r0["params"].items():
        torch.testing.assert_close(r1["params"][k], v, rtol=0, atol=0, msg=k)
    # only rank 0 writes checkpoints, bundles and logs; one summary is printed
    assert r0["writes"] and not r1["writes"], r1["writes"]
    assert log.count("trained to step 4") == 1, log
    # resume under two processes: continue to step 6 from the step-4 state
    log = _run(command, manifest, out, tmp_path / "rec", 2, PER_RANK, 6, resume=True)
    assert "resuming" in log and log.count("trained to step 6") == 1, log
    resumed = torch.load(tmp_path / "rec" / "rank0.pt", weights_only=True)["params"]
    straight = tmp_path / "straight"
    if command == "train-ldm":
        _vae_bundle(straight)
    _run(command, manifest, straight, tmp_path / "rec6", 2, PER_RANK, 6)
    uninterrupted = torch.load(tmp_path / "rec6" / "rank0.pt", weights_only=True)["params"]
    for k, v in uninterrupted.items():
        torch.testing.assert_close(resumed[k], v, rtol=1e-5, atol=1e-6, msg=k)
    if COMMANDS[command][2]:  # one process, doubled batch: the same update up to float sums
        single = tmp_path / "single"
        _vae_bundle(single)
        _run(command, manifest, single, tmp_path / "rec1", 1, 2 * PER_RANK, 4)
        one = torch.load(tmp_path / "rec1" / "rank0.pt", weights_only=True)["params"]
        for k, v in r0["params"].items():
            torch.testing.assert_close(one[k], v, rtol=1e-4, atol=1e-5, msg=k)
