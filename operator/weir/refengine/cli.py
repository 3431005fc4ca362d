"""`weir engine`: serve an emulated or torch reference engine.

Thin: options become the typed settings of `emulated`, `torch_backend` and
`server`. The API key is read from the environment variable named by
`--api-key-env`, never taken as a command-line value.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from weir.api.profile import ProfileError, load_profile
from weir.engines.cli import api_key_from_env
from weir.engines.errors import EngineError
from weir.refengine.protocol import Engine
from weir.refengine.server import ServerSettings
from weir.serving import ServerLimits


@dataclass(frozen=True)
class _EngineOptions:
    """The `weir engine` options that shape the backend."""

    model_name: str
    profile: Path | None
    fixed_latency: tuple[float, float, float, float] | None
    max_batch: int | None
    max_queue: int
    prefix_caching: bool
    seed: int | None
    layers: int
    width: int
    heads: int
    device: str
    threads: int | None
    prefill_chunk_tokens: int


def _emulated(o: _EngineOptions) -> Engine:
    from weir.refengine.emulated import EmulatedEngine, EmulatedSettings
    from weir.refengine.timing import fixed_profile

    if o.profile is not None:
        try:
            loaded = load_profile(o.profile)
        except ProfileError as exc:
            raise click.UsageError(str(exc)) from exc
    elif o.fixed_latency is not None:
        loaded = fixed_profile(o.model_name, *o.fixed_latency)
    else:
        raise click.UsageError("--backend emulated needs --profile FILE or --fixed-latency")
    settings = EmulatedSettings(
        max_batch=o.max_batch, max_waiting=o.max_queue, prefix_caching=o.prefix_caching, seed=o.seed
    )
    return EmulatedEngine(loaded, settings)


def _torch(o: _EngineOptions) -> Engine:
    try:
        from weir.refengine.torch_backend import TorchEngine, TorchSettings
    except ImportError as exc:
        raise click.UsageError("--backend torch needs PyTorch: pip install 'weir[engine]'") from exc
    settings = TorchSettings(
        layers=o.layers,
        width=o.width,
        heads=o.heads,
        max_batch=o.max_batch or 8,
        max_waiting=o.max_queue,
        device=o.device,
        threads=o.threads,
        prefill_chunk_tokens=o.prefill_chunk_tokens,
        seed=o.seed or 0,
    )
    return TorchEngine(settings)


@click.command("engine")
@click.option("--backend", type=click.Choice(["emulated", "torch"]), required=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address.")
@click.option("--port", default=8000, show_default=True, help="Listen port.")
@click.option("--model-name", default="weir/engine", show_default=True, help="Served name.")
@click.option(
    "--replicas",
    default=1,
    show_default=True,
    help="Emulated: serve this many replicas from one process, on --port, --port+1, ...",
)
@click.option("--profile", type=click.Path(exists=True, path_type=Path), help="Engine profile.")
@click.option(
    "--fixed-latency",
    type=(float, float, float, float),
    default=None,
    metavar="TTFT_P50 TTFT_P95 ITL_P50 ITL_P95",
    help="Load-independent latency in seconds (a hosted API stand-in).",
)
@click.option(
    "--max-batch", type=int, help="Running requests (default: the profile's, or 8 for torch)."
)
@click.option("--max-queue", default=1024, show_default=True, help="Waiting requests.")
@click.option("--prefix-caching", is_flag=True, help="Report cached prompt prefixes (emulated).")
@click.option("--api-key-env", help="Require this env variable's value as bearer key.")
@click.option("--rate-limit-rps", type=float, help="Requests/s before 429 + Retry-After.")
@click.option("--rate-limit-burst", default=1, show_default=True)
@click.option("--seed", type=int, help="Seed of latency draws or weights.")
@click.option("--layers", default=4, show_default=True, help="Torch: transformer layers.")
@click.option("--width", default=256, show_default=True, help="Torch: model width.")
@click.option("--heads", default=4, show_default=True, help="Torch: attention heads.")
@click.option("--device", default="auto", show_default=True, help="Torch: cpu, cuda or auto.")
@click.option("--threads", type=int, help="Torch: CPU threads (1 is steadiest on busy machines).")
@click.option(
    "--prefill-chunk-tokens", default=512, show_default=True, help="Torch: prompt tokens a step."
)
@click.option("--max-body-bytes", default=4 << 20, show_default=True, help="Request body limit.")
@click.option("--max-header-bytes", default=32 << 10, show_default=True, help="Head limit.")
@click.option("--header-timeout", default=10.0, show_default=True, help="Head read deadline, s.")
@click.option("--body-timeout", default=30.0, show_default=True, help="Body read deadline, s.")
@click.option("--keep-alive-timeout", default=30, show_default=True, help="Idle keep-alive, s.")
@click.option("--max-connections", default=4096, show_default=True, help="Open connections.")
def engine(
    backend: str,
    host: str,
    port: int,
    api_key_env: str | None,
    rate_limit_rps: float | None,
    rate_limit_burst: int,
    replicas: int,
    max_body_bytes: int,
    **shape: Any,
) -> None:
    """Serve an OpenAI-compatible engine with trtllm_ metrics at /prometheus/metrics."""
    from weir.refengine.serve import serve_forever

    limits = ServerLimits(
        max_header_bytes=shape.pop("max_header_bytes"),
        header_timeout_s=shape.pop("header_timeout"),
        body_timeout_s=shape.pop("body_timeout"),
        keep_alive_timeout_s=shape.pop("keep_alive_timeout"),
        max_connections=shape.pop("max_connections"),
    )
    options = _EngineOptions(**shape)
    settings = ServerSettings(
        model_name=options.model_name,
        api_key=api_key_from_env(api_key_env),
        rate_limit_rps=rate_limit_rps,
        rate_limit_burst=rate_limit_burst,
        max_body_bytes=max_body_bytes,
        limits=limits,
    )
    if replicas < 1 or (replicas > 1 and backend != "emulated"):
        raise click.UsageError("--replicas N > 1 is for the emulated backend")
    build = _emulated if backend == "emulated" else _torch
    engines = [build(options) for _ in range(replicas)]
    try:
        asyncio.run(serve_forever(engines, settings, host=host, port=port))
    except EngineError as exc:
        raise click.ClickException(str(exc)) from exc
