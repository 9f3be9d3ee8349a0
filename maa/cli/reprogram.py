"""``maa reprogram``: dynamic reprogramming, new training pairs composed from templates."""

from __future__ import annotations

from pathlib import Path

import typer

from maa.cli.common import console


def reprogram_cmd(
    manifest: Path = typer.Option(..., help="Original (audio, caption) pairs (.parquet)."),
    events: Path = typer.Option(..., help="Single-event clips with captions (.parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Manifest of composed clips to write."),
    audio_out: Path = typer.Option(..., help="Folder for the composed wav files."),
    n: int = typer.Option(None, help="Number of composed clips (default: one per pair)."),
    max_extra: int = typer.Option(2, help="At most this many events added to a pair."),
    min_extra: int = typer.Option(1, help="At least this many events added to a pair."),
    max_seconds: float = typer.Option(10.0, help="Longest composed clip, seconds."),
    sample_rate: int = typer.Option(None, help="Output rate, Hz (default: the pairs' rate)."),
    seed: int = typer.Option(0, help="Random seed; item j is the same for the same seed."),
) -> None:
    """Compose new pairs from a manifest and sampled events by caption templates."""
    from maa.stages.reprogram import reprogram

    s = reprogram(
        manifest, events, out, audio_out, n, max_extra, seed,
        min_extra=min_extra, sample_rate=sample_rate, max_seconds=max_seconds,
    )  # fmt: skip
    rate = s.seconds / s.elapsed if s.elapsed > 0 else 0.0
    console.print(
        f"composed {s.written} clip(s), {s.seconds:.1f} s of audio ({rate:.1f} s/s); "
        f"{s.resumed} already in the output; {s.skipped} skipped"
        + (f" (reasons in {s.skipped_path})" if s.skipped_path else ""),
        highlight=False,
    )
    console.print(f"manifest: [bold]{s.out}[/]")
