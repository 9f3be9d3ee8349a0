"""Thin Typer commands: parse arguments, call a library function, print the result.

Each module here exposes ``register(app)``; :mod:`maa_cli.cli` wires them together. Heavy
imports (torch models, transformers) happen inside the command bodies so ``maa --help`` is fast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Print a :class:`~maa_cli.errors.MaaError` as one red line and exit with code 2.

    Anything else is a bug in maa and keeps its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from maa_cli.errors import MaaError

        try:
            return func(*args, **kwargs)
        except MaaError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None

    return wrapper  # type: ignore[return-value]
