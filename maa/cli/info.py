"""``maa info``: versions, compute device and where the shipped assets are."""

from __future__ import annotations

from maa.cli.common import console


def info_cmd() -> None:
    """Print versions, the compute device and where the shipped assets are."""
    from rich.table import Table

    from maa.system import system_info

    table = Table(title="maa", show_header=False)
    for key, value in system_info().items():
        table.add_row(key, str(value))
    console.print(table)
