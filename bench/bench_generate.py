"""Generation speed (10 s of audio, paper-size U-Net) and LDM training throughput.

Rows:

* ``generate`` — seconds per clip and real-time factor (RTF = seconds of compute per second of
  audio) for DDIM-100 and DPM-Solver++(2M)-25 at batch 1 and 8, for :class:`Generator` (CFG as
  one batched forward; bf16 and optionally ``torch.compile`` on CUDA) and for the diffusers
  reference loop (same U-Net, VAE decode and vocoder; CFG as two separate forwards; fp32), with
  ours/reference.
* ``train`` — LDM training samples/s on cached latents vs encoding audio and text on the fly.

Random weights (timing does not depend on them), MiniLM text encoder (so the U-Net is the paper
layout with 384-d cross-attention, 153 M parameters), the paper VAE and the pretrained HiFi-GAN.
``--quick`` (CPU in minutes): batch 1 only; one guided denoising step (best of 3) and the fixed
part (text, VAE decode, vocoder) are timed and combined as fixed + steps × step (marked in the
``steps_timed`` column) instead of timing whole 25/100-step runs.

    python bench/bench_generate.py [--quick] [--compile] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import machine, report, timeit
from maa.generate import Generator, make_scheduler
from maa.mel import MelSpectrogram, get_mel_preset
from maa.models.unet import NoiseSchedule, build_unet, count_parameters, get_unet_config
from maa.models.vae import VAE_PRESETS, build_vae
from maa.text import load_text_encoder
from maa.vocoder import load_vocoder

SECONDS = 10.0
MEL = get_mel_preset("default")


def build(device: torch.device, dtype: torch.dtype, compile_unet: bool) -> Generator:
    torch.manual_seed(0)
    text = load_text_encoder("minilm", device)
    unet = build_unet(get_unet_config("paper").with_text_width(text.width))
    unet = torch.nn.Module.to(unet, device, dtype).eval().requires_grad_(False)
    if compile_unet:
        unet = torch.compile(unet)
    vae = build_vae(VAE_PRESETS["paper"]).to(device, dtype).eval().requires_grad_(False)
    voc_dtype = "bf16" if dtype == torch.bfloat16 else "fp32"
    vocoder = load_vocoder("default", MEL, str(device), dtype=voc_dtype)
    return Generator(unet, vae, text, vocoder, MEL, NoiseSchedule(), 1.0, device, dtype)


@torch.no_grad()
def reference_generate(gen: Generator, prompts: list[str], steps: int, sampler: str):
    """Plain diffusers loop: fp32, CFG as two separate U-Net forwards, then decode + vocode."""
    frames = MEL.frames_for_seconds(SECONDS)
    emb = gen.text_encoder.encode([*prompts, ""])
    b = len(prompts)
    cond, cmask = emb.tokens[:b], emb.mask[:b]
    unc, umask = emb.tokens[[b] * b], emb.mask[[b] * b]
    sched = make_scheduler(sampler, gen.schedule)
    sched.set_timesteps(steps, device=gen.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, 4, MEL.n_mels // 8, frames // 8, generator=g).to(gen.device)
    x = x * sched.init_noise_sigma
    for t in sched.timesteps:
        xin = sched.scale_model_input(x, t)
        eps_u = gen.unet(xin, t, encoder_hidden_states=unc, encoder_attention_mask=umask).sample
        eps_c = gen.unet(xin, t, encoder_hidden_states=cond, encoder_attention_mask=cmask).sample
        x = sched.step(eps_u + 3.0 * (eps_c - eps_u), t, x).prev_sample
    return gen.vocoder(gen.vae.decode(x))


def ours(gen: Generator, prompts: list[str], steps: int, sampler: str):
    return gen.generate(prompts, duration=SECONDS, steps=steps, sampler=sampler, seed=0,
                        batch_size=len(prompts))  # fmt: skip


def time_pipeline(fn, gen, batch, steps, sampler, quick, cuda) -> tuple[float, str]:
    """Seconds for ``batch`` clips: the whole pipeline, or with ``quick`` its measured parts."""
    prompts = [f"a dog barks number {i}" for i in range(batch)]
    if not quick:
        return timeit(lambda: fn(gen, prompts, steps, sampler), repeat=2, cuda=cuda), str(steps)
    # --quick: best-of-3 time of one guided denoising step (the part repeated `steps` times)
    # plus the fixed part (text encoding, VAE decode, vocoder), each measured, then combined
    emb = gen.text_encoder.encode([*prompts, ""]).to(gen.device, gen.dtype)
    sel = lambda rows: type(emb)(emb.tokens[rows], emb.mask[rows], emb.pooled[rows])  # noqa: E731
    cond, unc = sel(list(range(batch))), sel([batch] * batch)
    x = torch.randn(batch, 4, MEL.n_mels // 8, MEL.frames_for_seconds(SECONDS) // 8)
    x, t = x.to(gen.device), torch.tensor(500, device=gen.device)

    def one_step():
        with torch.no_grad():
            if fn is reference_generate:  # CFG as two forwards
                for e in (unc, cond):
                    gen.unet(x, t, encoder_hidden_states=e.tokens, encoder_attention_mask=e.mask)
            else:
                gen.predict_noise(x, t, cond, unc, 3.0)

    def fixed():
        with torch.no_grad():
            gen.text_encoder.encode([*prompts, ""])
            gen.decode(x)

    per_step = timeit(one_step, repeat=3, warmup=1, cuda=cuda)
    return timeit(fixed, repeat=1, warmup=0, cuda=cuda) + steps * per_step, "1 step × " + str(steps)


def bench_generate(args, device, rows) -> None:
    cuda = device.type == "cuda"
    variants = [("reference fp32", torch.float32, False, reference_generate)]
    if cuda:
        variants.append(("ours bf16", torch.bfloat16, False, ours))
        if args.compile:
            variants.append(("ours bf16+compile", torch.bfloat16, True, ours))
    else:
        variants.append(("ours fp32", torch.float32, False, ours))
    batches = [1] if args.quick else [1, 8]
    quick = args.quick
    ref_times: dict[tuple[int, str], float] = {}
    for name, dtype, comp, fn in variants:
        gen = build(device, dtype, comp)
        params = count_parameters(gen.unet)
        if not args.quick:
            fn(gen, ["warm-up"], 2, "ddim")  # first call: allocations, compilation
        for batch in batches:
            for sampler, steps in (("ddim", 100), ("dpmpp-2m", 25)):
                t, timed = time_pipeline(fn, gen, batch, steps, sampler, quick, cuda)
                per_clip = t / batch
                key = (batch, sampler)
                if name.startswith("reference"):
                    ref_times[key] = per_clip
                rows.append({
                    "bench": "generate", "impl": name, "batch": batch,
                    "sampler": f"{sampler}-{steps}", "steps_timed": timed,
                    "s_per_clip": per_clip, "rtf": per_clip / SECONDS,
                    "ours/ref": per_clip / ref_times[key] if key in ref_times else "",
                    "unet_params_M": params / 1e6,
                })  # fmt: skip
        del gen


def bench_train(args, device, rows) -> None:
    """Paper U-Net training samples/s: cached latents vs mel + VAE + text encoding per step."""
    from maa.stages.ldm import encode_waves

    torch.manual_seed(0)
    batch = 2 if args.quick else 8
    text = load_text_encoder("minilm", device)
    unet = build_unet(get_unet_config("paper").with_text_width(text.width)).to(device)
    vae = build_vae(VAE_PRESETS["paper"]).to(device).eval().requires_grad_(False)
    melspec = MelSpectrogram(MEL).to(device)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-5)
    ddpm = NoiseSchedule().ddpm()
    frames = MEL.frames_for_seconds(SECONDS)
    waves = torch.randn(batch, MEL.samples_for(frames), device=device) * 0.1
    captions = [f"a dog barks number {i}" for i in range(batch)]
    with torch.no_grad():
        z_cached, _ = encode_waves(vae, melspec, waves, MEL)
        cached_emb = text.encode(captions)
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda")

    def step(z, emb):
        noise = torch.randn_like(z)
        t = torch.randint(0, 1000, (z.shape[0],), device=device)
        with autocast:
            pred = unet(
                ddpm.add_noise(z, noise, t.cpu()).to(device),
                t,
                encoder_hidden_states=emb.tokens,
                encoder_attention_mask=emb.mask,
            ).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def on_the_fly():
        with torch.no_grad():
            mean, std = encode_waves(vae, melspec, waves, MEL)
            emb = text.encode(captions)
        step(mean + std * torch.randn_like(std), emb)

    cuda = device.type == "cuda"
    repeat = 1 if args.quick else 3
    t_cached = timeit(lambda: step(z_cached, cached_emb), repeat=repeat, cuda=cuda)
    t_fly = timeit(on_the_fly, repeat=repeat, cuda=cuda)
    for name, t in (("cached latents", t_cached), ("encode on the fly", t_fly)):
        rows.append({
            "bench": "train", "impl": name, "batch": batch, "samples_per_s": batch / t,
            "speedup": t_fly / t if name == "cached latents" else 1.0,
        })  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="CPU-friendly: batch 1, few steps timed")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (CUDA)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--skip-train", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    rows: list[dict] = []
    t0 = time.perf_counter()
    bench_generate(args, device, rows)
    if not args.skip_train:
        bench_train(args, device, rows)
    notes = (
        f"{SECONDS:.0f} s clips at 22.05 kHz, guidance 3, device {device} "
        f"({machine().get('gpu', machine()['cpu'])}); total {time.perf_counter() - t0:.0f} s"
    )
    report("generate", rows, notes)


if __name__ == "__main__":
    main()
