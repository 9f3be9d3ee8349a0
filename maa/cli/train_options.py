"""Options of ``train-vae``, ``train-ldm`` and ``train-vocoder``, defined once so names, defaults
and help agree: the trainer options of every ``train-*`` command (from :mod:`maa.cli.common`,
re-exported) and those these three share."""

from __future__ import annotations

import typer

from maa.cli.common import CKPT_EVERY, EMA_DECAY, GRAD_ACCUM, PRECISION, RESUME, SEED, TRAIN_DEVICE  # noqa: F401

MANIFEST = typer.Option(..., help="Training manifest (.parquet); uses its train split.")
OUT = typer.Option(..., "--out", "-o", help="Bundle folder to write (created if new).")
MAX_STEPS = typer.Option(1000, help="Total optimiser steps.")
BATCH_SIZE = typer.Option(16, help="Clips per step (per GPU).")
VAL_EVERY = typer.Option(0, help="Validate on the valid split every N steps (0: off).")
