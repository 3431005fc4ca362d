"""`weir router`: run one router in the foreground (one per InferenceDeployment).

Upstreams come either from fixed `--backend` URLs or from the EndpointSlices
of one Service per pool (`--discover-service POOL=SERVICE`). The policy is
re-read from `--policy-file` when it changes; secrets (hosted API key,
client tokens) are read from files so they can be mounted Secrets and
never appear on a command line, in the environment or in logs.

Safe by default (each of these flags also reads a WEIR_ROUTER_* variable,
named in --help, so a lab can open a router without changing its
command line): clients need a bearer token (`--client-tokens-file`;
`--allow-anonymous` to run open), `/metrics` is on `--metrics-port`, not the
API port (`--metrics-on-api-port` to keep it there too), and a hosted
endpoint must be https (`--allow-insecure-hosted HOST` for a plain-http
stand-in).
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path

import click
from pydantic import ValidationError

from weir.api._base import describe_validation_error
from weir.router.backends import Discovery, StaticDiscovery, parse_backend
from weir.router.config import (
    PolicyFile,
    RouterPolicy,
    RouterSettings,
    read_secret,
    read_tokens,
)
from weir.router.errors import ConfigError
from weir.serving import ServerLimits


def _discovery(
    backends: tuple[str, ...],
    namespace: str | None,
    services: tuple[str, ...],
    port_name: str | None,
    kubeconfig: Path | None,
) -> Discovery:
    if backends and services:
        raise ConfigError("give --backend or --discover-service, not both")
    if backends:
        return StaticDiscovery(parse_backend(b) for b in backends)
    if not services or namespace is None:
        raise ConfigError("give --backend URLs, or --discover-namespace and --discover-service")
    from kubernetes import client, config

    from weir.router.discovery import EndpointSliceDiscovery

    if kubeconfig is not None:
        api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.ApiClient()
    by_pool: dict[str, str] = {}
    for spec in services:
        pool, _, service = spec.partition("=")
        by_pool[pool] = service or pool
    return EndpointSliceDiscovery(api, namespace, by_pool, port_name)


@click.command("router")
@click.option("--model", "model_name", required=True, help="Model name served (/v1/models).")
@click.option(
    "--model-alias",
    "model_aliases",
    multiple=True,
    metavar="NAME",
    help="Another name clients may ask for the model by (repeatable; others get 404).",
)
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--backend",
    "backends",
    multiple=True,
    metavar="[POOL=]URL",
    help="A fixed engine URL (repeatable).",
)
@click.option("--discover-namespace", help="Namespace of the engine Services.")
@click.option(
    "--discover-service",
    "services",
    multiple=True,
    metavar="POOL=SERVICE",
    help="Watch this Service's EndpointSlices as pool POOL (repeatable).",
)
@click.option("--engine-port-name", default=None, help="EndpointSlice port name (default: first).")
@click.option(
    "--kubeconfig",
    type=click.Path(path_type=Path),
    default=None,
    help="Kubeconfig (default: in-cluster service account).",
)
@click.option(
    "--policy-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Spill policy (YAML/JSON, RouterPolicy), re-read when it changes.",
)
@click.option("--policy-poll-seconds", default=2.0, show_default=True, type=float)
@click.option(
    "--hosted-key-file",
    type=click.Path(path_type=Path),
    default=None,
    help="File with the hosted endpoint's API key (a mounted Secret).",
)
@click.option(
    "--client-tokens-file",
    type=click.Path(path_type=Path),
    default=None,
    help="File with accepted client bearer tokens, one per line.",
)
@click.option(
    "--allow-anonymous",
    is_flag=True,
    envvar="WEIR_ROUTER_ALLOW_ANONYMOUS",
    help="Serve clients without a bearer token (otherwise --client-tokens-file is required).",
)
@click.option(
    "--allow-insecure-hosted",
    "insecure_hosts",
    multiple=True,
    envvar="WEIR_ROUTER_ALLOW_INSECURE_HOSTED",
    metavar="HOST",
    help="Allow a plain-http hosted endpoint on HOST (name, IP or CIDR; repeatable).",
)
@click.option(
    "--metrics-port",
    envvar="WEIR_ROUTER_METRICS_PORT",
    default=9091,
    show_default=True,
    type=int,
    help="Port of /metrics (spend, caps); 0: no metrics listener.",
)
@click.option(
    "--metrics-on-api-port",
    is_flag=True,
    envvar="WEIR_ROUTER_METRICS_ON_API_PORT",
    help="Also serve /metrics on --port.",
)
@click.option("--max-header-bytes", default=32 << 10, show_default=True, type=int)
@click.option("--header-timeout", default=10.0, show_default=True, type=float)
@click.option("--keep-alive-timeout", default=30, show_default=True, type=int)
@click.option("--max-connections", default=4096, show_default=True, type=int)
@click.option("--body-timeout", default=30.0, show_default=True, type=float)
@click.option("--max-retry-after", default=60.0, show_default=True, type=float)
@click.option("--max-body-bytes", default=1 << 20, show_default=True, type=int)
@click.option("--connect-timeout", default=2.0, show_default=True, type=float)
@click.option("--first-token-timeout", default=60.0, show_default=True, type=float)
@click.option("--idle-timeout", default=30.0, show_default=True, type=float)
@click.option(
    "--itl-rule",
    type=click.Choice(["mean", "per_token"]),
    default="mean",
    show_default=True,
    help="Judge a stream's ITL by its mean pace, or each token by its own gap.",
)
@click.option("--breaker-failures", default=5, show_default=True, type=int)
@click.option("--breaker-open-seconds", default=10.0, show_default=True, type=float)
@click.option("--dedupe-window-seconds", default=600.0, show_default=True, type=float)
@click.option("--budget-window-seconds", default=60.0, show_default=True, type=float)
@click.option("--log-level", default="info", show_default=True)
def router(**opts: object) -> None:
    """Serve the OpenAI API in front of the engine pods, spilling to the hosted endpoint."""
    import uvloop

    from weir.router.server import build_router, serve

    logging.basicConfig(level=str(opts["log_level"]).upper(), format="%(levelname)s %(message)s")
    try:
        settings, policy_file, policy, discovery = _load(opts)
        key_file = opts["hosted_key_file"]
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        live = build_router(settings, policy)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    _tune_gc()
    metrics_port = int(str(opts["metrics_port"]))
    uvloop.run(
        serve(
            live,
            discovery,
            policy_file=policy_file,
            poll_s=float(str(opts["policy_poll_seconds"])),
            host=str(opts["host"]),
            port=int(str(opts["port"])),
            key_file=key_file if isinstance(key_file, Path) else None,
            metrics_port=metrics_port or None,
        )
    )


def _tune_gc() -> None:
    """Keep collector pauses out of the streams' latency.

    Everything alive at startup (modules, classes, settings) is moved out of
    the collector's reach, and young collections run ten times less often:
    a full collection over the startup heap otherwise shows up as tens of
    milliseconds in the TTFT p99 of whichever requests it lands on.
    """
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0 * 10, gen1, gen2)


def _load(
    opts: dict[str, object],
) -> tuple[RouterSettings, PolicyFile | None, RouterPolicy, Discovery]:
    def path(name: str) -> Path | None:
        value = opts[name]
        return value if isinstance(value, Path) else None

    key_path, tokens_path, policy_path = (
        path("hosted_key_file"),
        path("client_tokens_file"),
        path("policy_file"),
    )
    settings = _settings(opts, key_path, tokens_path)
    policy_file = PolicyFile(policy_path) if policy_path else None
    policy = (policy_file.read_if_changed() if policy_file else None) or RouterPolicy()
    backends = opts["backends"]
    services = opts["services"]
    assert isinstance(backends, tuple) and isinstance(services, tuple)
    namespace = opts["discover_namespace"]
    port_name = opts["engine_port_name"]
    discovery = _discovery(
        backends,
        namespace if isinstance(namespace, str) else None,
        services,
        port_name if isinstance(port_name, str) else None,
        path("kubeconfig"),
    )
    return settings, policy_file, policy, discovery


def _strings(value: object) -> frozenset[str]:
    """A repeatable option's values."""
    assert isinstance(value, tuple)
    return frozenset(str(v) for v in value)


def _settings(
    opts: dict[str, object], key_path: Path | None, tokens_path: Path | None
) -> RouterSettings:
    try:
        limits = ServerLimits(
            max_header_bytes=int(str(opts["max_header_bytes"])),
            header_timeout_s=float(str(opts["header_timeout"])),
            keep_alive_timeout_s=int(str(opts["keep_alive_timeout"])),
            max_connections=int(str(opts["max_connections"])),
            body_timeout_s=float(str(opts["body_timeout"])),
        )
        return RouterSettings(
            allow_anonymous=bool(opts["allow_anonymous"]),
            allow_insecure_hosted=frozenset(h.lower() for h in _strings(opts["insecure_hosts"])),
            metrics_on_api_port=bool(opts["metrics_on_api_port"]),
            max_retry_after_s=float(str(opts["max_retry_after"])),
            limits=limits,
            model_name=str(opts["model_name"]),
            model_aliases=_strings(opts["model_aliases"]),
            max_body_bytes=int(str(opts["max_body_bytes"])),
            connect_timeout_s=float(str(opts["connect_timeout"])),
            first_token_timeout_s=float(str(opts["first_token_timeout"])),
            idle_timeout_s=float(str(opts["idle_timeout"])),
            itl_rule="per_token" if opts["itl_rule"] == "per_token" else "mean",
            breaker_failures=int(str(opts["breaker_failures"])),
            breaker_open_s=float(str(opts["breaker_open_seconds"])),
            dedupe_window_s=float(str(opts["dedupe_window_seconds"])),
            budget_window_s=float(str(opts["budget_window_seconds"])),
            hosted_key=read_secret(key_path, "hosted API key") if key_path else None,
            client_tokens=read_tokens(tokens_path) if tokens_path else frozenset(),
        )
    except ValidationError as exc:
        raise ConfigError(describe_validation_error("router settings", exc)) from exc
