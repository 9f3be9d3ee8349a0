"""The ``maa`` command: one Typer app, one module per command group in ``maa_cli/commands``."""

from __future__ import annotations

import typer

from maa_cli import __version__
from maa_cli.commands import console, handle_errors

app = typer.Typer(
    name="maa",
    help="Make-An-Audio toolkit: prompt enhancement, spectrogram VAE, latent diffusion, "
    "vocoder, generation and evaluation — each stage a command over Parquet manifests and "
    "bundles.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"maa {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Make-An-Audio toolkit."""


@app.command()
@handle_errors
def info() -> None:
    """Print versions, the compute device and where the shipped assets are."""
    from rich.table import Table

    from maa_cli.system import system_info

    table = Table(title="maa", show_header=False)
    for key, value in system_info().items():
        table.add_row(key, str(value))
    console.print(table)


def _register() -> None:
    """Add every command module in ``maa_cli/commands`` (each has ``register(app)``)."""
    import importlib
    import pkgutil

    import maa_cli.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"maa_cli.commands.{info.name}").register(app)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
