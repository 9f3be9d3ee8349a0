"""``maa distill`` and ``maa distill-merge``: caption audio with experts reranked by CLAP."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import console


def distill_cmd(
    audio_dir: Path = typer.Option(..., help="Folder of recordings to caption (searched deeply)."),
    out: Path = typer.Option(..., "--out", "-o", help="Manifest to write (.parquet); resumed."),
    experts: str = typer.Option(
        "label,retrieval",
        help="Comma-separated caption experts, in priority order: label, retrieval, "
        "captioner:PATH (a local Hugging Face audio-captioning model folder).",
    ),
    clap: Path = typer.Option(
        None,
        help="CLAP that reranks candidates: a bundle (maa train-clap) or a Hugging Face "
        "ClapModel folder (default: $MAA_CLAP or the shipped CLAP, if any).",
    ),
    no_clap: bool = typer.Option(
        False, "--no-clap", help="Do not rerank: keep the first expert's best candidate."
    ),
    caption_bank: Path = typer.Option(
        None, help="Captions for the retrieval expert: a manifest (.parquet) or a .txt file."
    ),
    top_k: int = typer.Option(5, help="Candidates per clip from retrieval and captioner."),
    shard: str = typer.Option(None, help="Process shard i/n only (i from 0), e.g. 0/4."),
    batch_size: int = typer.Option(32, help="Clips per CLAP audio batch."),
    save_every: int = typer.Option(256, help="Rewrite the output after this many clips."),
    source: str = typer.Option(None, help="Value of the source column (default: folder name)."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
) -> None:
    """Caption a folder of audio: experts propose, a CLAP picks the best candidate per clip."""
    from maa.clap import find_default_clap, load_clap
    from maa.device import resolve_device
    from maa.stages.distill import distill

    dev = str(resolve_device(device))
    spec = None if no_clap else (clap if clap is not None else find_default_clap())
    model = load_clap(spec, dev) if spec is not None else None
    specs = [s.strip() for s in experts.split(",") if s.strip()]
    if model is None and "retrieval" in specs:
        specs.remove("retrieval")  # retrieval needs a CLAP; the other experts still run
        console.print("no CLAP: the retrieval expert is skipped", highlight=False)
    s = distill(
        audio_dir, out, specs, model, caption_bank, top_k, shard,
        batch_size=batch_size, save_every=save_every, source=source, device=dev,
        log=lambda m: console.print(m, highlight=False),
    )  # fmt: skip
    console.print(
        f"captioned {s.processed} clip(s) in {s.elapsed:.1f} s ({s.clips_per_s:.1f} clips/s); "
        f"{s.resumed} already in the output; {s.failed} failed"
        + (f" (reasons in {s.errors_path})" if s.errors_path else ""),
        highlight=False,
    )
    console.print(f"manifest: [bold]{s.out}[/]")


def distill_merge_cmd(
    shards: list[Path] = typer.Argument(..., help="Shard manifests written by maa distill."),
    out: Path = typer.Option(..., "--out", "-o", help="Merged manifest to write (.parquet)."),
) -> None:
    """Merge the outputs of `maa distill --shard i/n` runs into one manifest."""
    from maa.stages.distill import merge_shards

    rows, dup, errs = merge_shards(shards, out)
    console.print(
        f"merged {len(shards)} shard(s): {rows} clip(s), {dup} duplicate(s) dropped, "
        f"{errs} failure(s) recorded",
        highlight=False,
    )
    console.print(f"manifest: [bold]{out}[/]")
