"""The `weir` command.

Each command lives in its own module and is imported only when it is invoked,
so `weir router` does not pay for importing the simulator or kopf. To add a
command, add one line to `_COMMANDS` (or to `_BENCH_COMMANDS` for a `weir bench
X` benchmark): name -> ("module:attribute", help), where the attribute is a
click command or group.

Other distributions add commands through the entry-point groups `weir.commands`
and `weir.bench` (the lab, `weir-lab`, adds `weir cluster`, `weir demo` and the
operator and router benchmarks this way): the product names no module of
theirs, so it runs, and its wheel builds, without them. Such a command is
listed with the distribution that adds it; its own `--help` says the rest.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any, ClassVar

import click

_COMMANDS: dict[str, tuple[str, str]] = {
    "engine": (
        "weir.refengine.cli:engine",
        "Serve an OpenAI-compatible engine: emulated (from a profile) or torch reference.",
    ),
    "engine-spec": (
        "weir.engines.cli:engine_spec",
        "Print a TensorRT-LLM recipe's Deployment, ConfigMap and cache objects as YAML.",
    ),
    "profile": (
        "weir.engines.cli:profile",
        "Measure an OpenAI-compatible endpoint's capacity curve into an engine profile.",
    ),
    "router": (
        "weir.router.cli:router",
        "OpenAI-compatible streaming router: local first, spill to hosted, useful tokens.",
    ),
    "bench": ("weir.cli:bench", "Benchmarks: weir against its peers, measured in the same run."),
    "whatif": (
        "weir.sim.cli:whatif",
        "Where a workload belongs: hosted, dedicated GPUs, GPUs with spot, or weir's hybrid.",
    ),
    "crds": ("weir.controller.crds:crds", "Generate the CRDs in crds/ from the pydantic models."),
    "operator": ("weir.controller.cli:operator", "Run the operator (kopf) against the cluster."),
    "doctor": (
        "weir.controller.doctor:doctor",
        "Check weir on a cluster end to end: CRDs, operator, series, pools' nodes, endpoints.",
    ),
}

_BENCH_COMMANDS: dict[str, tuple[str, str]] = {
    "planner": (
        "weir.sim.cli:bench_planner",
        "Replay a trace through weir's planner and the baselines; compare $ per useful token.",
    ),
}


def plugin_commands(group: str) -> dict[str, tuple[str, str]]:
    """Commands other installed distributions add to `group` (name -> (target, help))."""
    found: dict[str, tuple[str, str]] = {}
    for point in entry_points(group=group):
        source = point.dist.name if point.dist is not None else "a plugin"
        found[point.name] = (point.value, f"(from {source}; see its --help)")
    return found


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    commands_table: ClassVar[dict[str, tuple[str, str]]] = _COMMANDS
    plugin_group: ClassVar[str] = "weir.commands"

    def _table(self) -> dict[str, tuple[str, str]]:
        return {**plugin_commands(self.plugin_group), **self.commands_table}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._table())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        table = self._table()
        if cmd_name not in table:
            return None
        target, _ = table[cmd_name]
        module_name, attribute = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(self._table().items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class _BenchGroup(_LazyGroup):
    commands_table: ClassVar[dict[str, tuple[str, str]]] = _BENCH_COMMANDS
    plugin_group: ClassVar[str] = "weir.bench"


@click.group(cls=_LazyGroup)
@click.version_option(package_name="weir")
def main() -> None:
    """weir: LLM deployments at the lowest $ per useful token that meets the SLO."""


@click.group(cls=_BenchGroup)
def bench() -> None:
    """Benchmarks that print ratios against peers measured in the same run."""
