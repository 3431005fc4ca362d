"""The `weir` command.

Each command group lives in its own module and is imported only when it is
invoked, so `weir cluster status` does not pay for importing the simulator or
kopf. To add a command, add one line to `_COMMANDS`: name -> "module:attribute"
where the attribute is a click command or group.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

_COMMANDS: dict[str, tuple[str, str]] = {
    "cluster": (
        "weir.cluster.cli:cluster",
        "Run a real local control plane with simulated GPU pools.",
    ),
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        target, _ = _COMMANDS[cmd_name]
        module_name, attribute = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(_COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="weir")
def main() -> None:
    """weir: LLM deployments at the lowest $ per useful token that meets the SLO."""
