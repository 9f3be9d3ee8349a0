"""VAE training speed (steps/s, samples/s) and peak memory at the tiny and paper presets."""

from __future__ import annotations

import argparse
import time

import torch
from _common import peak_rss_mb, report

from maa.mel import get_mel_preset
from maa.models.discriminator import (
    DiscConfig,
    MultiWindowDiscriminator,
    adaptive_weight,
    hinge_d_loss,
)
from maa.models.vae import get_vae_config
from maa.stages.vae import VAELoss, get_train_preset


def step_time(preset: str, batch: int, device: str, dtype: torch.dtype | None, steps: int) -> dict:
    """Time full GAN steps (G + D updates) on random log-mels of the preset's crop length."""
    from maa.models.vae import build_vae

    loss_cfg = get_train_preset(preset)
    mel_p = get_mel_preset(loss_cfg.mel)
    vae = build_vae(get_vae_config(preset)).to(device)
    disc = MultiWindowDiscriminator(
        DiscConfig(mel_p.n_mels, loss_cfg.disc_windows, loss_cfg.disc_channels), mel_p.floor
    )
    loss_mod = VAELoss(disc).to(device)
    opt_g = torch.optim.Adam([*vae.parameters(), loss_mod.logvar], lr=1e-4, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.9))
    mel = torch.randn(batch, mel_p.n_mels, loss_cfg.crop_frames, device=device) - 5
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def one() -> None:
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            recon, post = vae(mel)
        recon = recon.float()
        nll = ((mel - recon).abs() / loss_mod.logvar.exp() + loss_mod.logvar).sum() / batch
        disc.requires_grad_(False)
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            g = -disc(recon).mean()
        w = adaptive_weight(nll, g, vae.last_layer(), 0.5)
        (nll + 1e-6 * post.kl().sum() / batch + w * g).backward()
        opt_g.step()
        opt_g.zero_grad()
        disc.requires_grad_(True)
        with torch.autocast(device, dtype=dtype, enabled=dtype is not None):
            d = hinge_d_loss(disc(mel), disc(recon.detach()))
        d.backward()
        opt_d.step()
        opt_d.zero_grad()

    one()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    mem = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else peak_rss_mb()
    return {
        "preset": preset,
        "device": device,
        "precision": {None: "fp32", torch.bfloat16: "bf16"}[dtype],
        "batch": batch,
        "frames": loss_cfg.crop_frames,
        "steps_per_s": 1 / dt,
        "samples_per_s": batch / dt,
        "peak_mem_mb": mem,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="few steps; paper preset at batch 2")
    args = ap.parse_args()
    torch.manual_seed(0)
    steps = 3 if args.quick else 10
    rows = [step_time("tiny", 16, "cpu", None, steps)]
    rows.append(step_time("paper", 2 if args.quick else 4, "cpu", None, 1 if args.quick else 3))
    if torch.cuda.is_available():
        for dtype in (None, torch.bfloat16):
            rows.append(step_time("paper", 16, "cuda", dtype, steps))
    report("vae_train", rows, notes="one step = generator (VAE) update + discriminator update")


if __name__ == "__main__":
    main()
