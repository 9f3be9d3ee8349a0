"""The one progress bar of every long loop (distill, reprogram, evaluate, training)."""

from __future__ import annotations

import time
from typing import Any


class ProgressBar:
    """A rich progress bar on stderr, one row per label: done/total, rate, elapsed, time left.

    ``on=False`` shows nothing (the calls still work). Counts are absolute, so the bar is also
    the ``(label, done, total)`` callback :mod:`maa.stages.eval_features` takes::

        with ProgressBar(unit="clips") as bar:
            bar("distill", done, total)             # "12.5 clips/s"
            bar("train", step, max_steps, "loss 0.31")

    A row's rate counts from its label's first call, so a resumed run shows its own speed.
    """

    def __init__(self, on: bool = True, unit: str = "items", transient: bool = False) -> None:
        from rich import progress as rp
        from rich.console import Console

        self.unit = unit
        self._rows: dict[str, tuple[Any, int, float]] = {}  # label -> (task, first done, t0)
        self._bar = rp.Progress(
            rp.TextColumn("[bold]{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
            rp.TextColumn("{task.fields[info]}"), rp.TimeElapsedColumn(),
            rp.TimeRemainingColumn(), console=Console(stderr=True), disable=not on,
            transient=transient,
        )  # fmt: skip

    def __enter__(self) -> ProgressBar:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def __call__(self, label: str, done: int, total: int, info: str = "") -> None:
        """Show ``done`` of ``total`` for ``label`` with the measured rate and ``info``."""
        now = time.perf_counter()
        if label not in self._rows:
            self._rows[label] = (self._bar.add_task(label, total=total, info=""), done, now)
        task, first, t0 = self._rows[label]
        rate = f"{(done - first) / max(now - t0, 1e-9):.3g} {self.unit}/s" if done > first else ""
        text = " · ".join(t for t in (info, rate) if t)
        self._bar.update(task, completed=done, total=total, info=text)
