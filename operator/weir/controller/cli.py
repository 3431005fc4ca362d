"""`weir operator run`: the operator as a process (in a pod, or beside a local cluster)."""

from __future__ import annotations

import asyncio

import click
import kopf


@click.group()
def operator() -> None:
    """Run the weir operator."""


@operator.command()
@click.option("--namespace", "namespaces", multiple=True, help="Watch these namespaces only.")
@click.option("--standalone", is_flag=True, help="No peering: the only operator instance.")
@click.option(
    "--peering",
    default="weir",
    show_default=True,
    help="Peering object name; instances with the same name elect one to act.",
)
@click.option(
    "--priority",
    default=0,
    show_default=True,
    type=int,
    help="Peering priority; the highest live instance acts.",
)
@click.option(
    "--liveness", default=None, help="Liveness endpoint, e.g. http://0.0.0.0:8080/healthz."
)
@click.option("--verbose", is_flag=True, help="Log every handler call.")
def run(
    namespaces: tuple[str, ...],
    standalone: bool,
    peering: str,
    priority: int,
    liveness: str | None,
    verbose: bool,
) -> None:
    """Reconcile InferenceDeployments and run their control loops until stopped."""
    import weir.controller.handlers  # noqa: F401 - registers the handlers with kopf

    kopf.configure(verbose=verbose)
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=list(namespaces),
            standalone=standalone,
            peering_name=None if standalone else peering,
            priority=priority,
            liveness_endpoint=liveness,
        )
    )
