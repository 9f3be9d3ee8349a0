"""Shared pieces of the thin Typer commands: console, error handling, trainer options.

:mod:`maa.cli.app` lists every command. Heavy imports (torch models, transformers) happen
inside the command bodies so ``maa --help`` is fast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from maa.errors import MaaError, system_error
from maa.fsutil import is_main_process, rollback_unless_checkpointed

if TYPE_CHECKING:
    from maa.trainer import TrainSummary

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

# Options every ``train-*`` command takes, defined once so names, defaults and help agree.
GRAD_ACCUM = typer.Option(1, help="Micro-batches per optimiser step.")
PRECISION = typer.Option("no", help="Mixed precision: no, bf16 or fp16.")
EMA_DECAY = typer.Option(None, help="EMA decay of the exported weights (e.g. 0.999).")
CKPT_EVERY = typer.Option(500, help="Write training state and weights every N steps.")
SEED = typer.Option(0, help="Random seed (data order, crops, init).")
TRAIN_DEVICE = typer.Option("auto", help="auto, cpu or cuda.")
RESUME = typer.Option(False, "--resume", help="Continue the run saved in the output folder.")


def handle_errors(func: F) -> F:
    """Print a :class:`~maa.errors.MaaError` — or an operating-system refusal (disk full,
    permission denied, read-only, too many open files) anywhere in an exception's chain — as one
    red line and exit with code 2. Anything else is a bug in maa and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MaaError as exc:
            error = exc
        except Exception as exc:
            found = system_error(exc)
            if found is None:
                raise
            error = found
        # escaped: a message may hold brackets (pip install 'maa[video]', a path) that rich
        # would take for markup and drop
        console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]


def keep_output_on_failure(func: F, param: str) -> F:
    """Wrap a ``train-*`` command so that a run which fails before writing its first training
    checkpoint leaves the folder named by option ``param`` as it found it (created files and
    folders are removed, a folder that did not exist is not left behind). Once a checkpoint
    exists, nothing is removed: the run can be resumed."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        folder = kwargs.get(param)
        with rollback_unless_checkpointed(Path(folder) if folder is not None else None):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def train_config(
    *,
    max_steps: int,
    batch_size: int,
    grad_accum: int,
    precision: str,
    ema: float | None,
    ckpt_every: int,
    val_every: int,
    seed: int,
    device: str,
    grad_clip: float | None = None,
):
    """The shared trainer settings every ``train-*`` command takes."""
    from maa.trainer import TrainConfig

    return TrainConfig(
        max_steps=max_steps,
        batch_size=batch_size,
        grad_accum=grad_accum,
        mixed_precision=precision,
        ema_decay=ema,
        ckpt_every=ckpt_every,
        val_every=val_every,
        seed=seed,
        device=device,
        grad_clip=grad_clip,
    )


def print_summary(s: TrainSummary, component: str, out: Any) -> None:
    """One line on the run, the files it skipped, and where the component was written (by the
    main process only: the ranks of a multi-process run share one result)."""
    if not is_main_process():
        return
    last = ", ".join(f"{k} {v:.4g}" for k, v in s.last.items())
    console.print(
        f"trained to step {s.steps} (from {s.resumed_from}) on {s.clips} clip(s) in "
        f"{s.seconds:.1f} s, {s.steps_per_s:.2f} steps/s; {last}",
        highlight=False,
    )
    for _path, reason in s.skipped[:10]:
        console.print(f"[yellow]skipped:[/] {reason}", highlight=False)
    if len(s.skipped) > 10:
        console.print(f"[yellow]… {len(s.skipped) - 10} more skipped[/]")
    console.print(f"bundle: [bold]{out}[/] (component {component})", highlight=False)
