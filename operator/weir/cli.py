"""The `weir` command.

Each command lives in its own module and is imported only when it is invoked,
so `weir cluster status` does not pay for importing the simulator or kopf. To
add a command, add one line to `_COMMANDS` (or to `_BENCH_COMMANDS` for a
`weir bench X` benchmark): name -> ("module:attribute", help), where the
attribute is a click command or group.
"""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import click

_COMMANDS: dict[str, tuple[str, str]] = {
    "engine": (
        "weir.engines.cli:engine",
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
    "cluster": (
        "weir.cluster.cli:cluster",
        "Run a real local control plane with simulated GPU pools.",
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
    "demo": ("weir.demo:demo", "Local cluster, operator and the example deployment, end to end."),
}

_BENCH_COMMANDS: dict[str, tuple[str, str]] = {
    "operator": (
        "weir.controller.bench:bench_operator",
        "The operator at scale on the local cluster: queries per cycle, cycle time, RSS.",
    ),
    "planner": (
        "weir.sim.cli:bench_planner",
        "Replay a trace through weir's planner and the baselines; compare $ per useful token.",
    ),
    "router": (
        "weir.router.bench:bench_router",
        "Streaming proxy throughput and added latency: direct, nginx, weir, LiteLLM.",
    ),
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    commands_table: ClassVar[dict[str, tuple[str, str]]] = _COMMANDS

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands_table)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands_table:
            return None
        target, _ = self.commands_table[cmd_name]
        module_name, attribute = target.split(":")
        command: Any = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(self.commands_table.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class _BenchGroup(_LazyGroup):
    commands_table: ClassVar[dict[str, tuple[str, str]]] = _BENCH_COMMANDS


@click.group(cls=_LazyGroup)
@click.version_option(package_name="weir")
def main() -> None:
    """weir: LLM deployments at the lowest $ per useful token that meets the SLO."""


@click.group(cls=_BenchGroup)
def bench() -> None:
    """Benchmarks that print ratios against peers measured in the same run."""
