"""`weir engine-spec` (a recipe's objects as YAML) and `weir profile` (measure an endpoint).

Both are thin: options become the typed settings of `recipes` and `profiler`.
Secrets are never command-line values: an API key is read from the environment
variable named by `--api-key-env`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import click

from weir.engines.errors import EngineError


def api_key_from_env(env_name: str | None) -> str | None:
    """The value of the environment variable `env_name` (None: no key)."""
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise click.UsageError(f"--api-key-env {env_name}: that environment variable is empty")
    return value


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from exc


def _shapes(text: str) -> tuple[tuple[int, int], ...]:
    shapes = []
    for item in text.split(","):
        try:
            i, o = item.split("/")
            shapes.append((int(i), int(o)))
        except ValueError as exc:
            raise click.BadParameter(
                f"expected INPUT/OUTPUT pairs like 128/128, got {item!r}"
            ) from exc
    return tuple(shapes)


@click.command("profile")
@click.option("--endpoint", required=True, help="Base URL, e.g. http://127.0.0.1:8000.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Profile YAML.")
@click.option("--model", default="weir/engine", show_default=True, help="Model name.")
@click.option("--gpu", default="unknown", show_default=True)
@click.option("--precision", default="unknown", show_default=True)
@click.option("--tensor-parallel", "tensor_parallel", default=1, show_default=True)
@click.option("--max-concurrency", type=int, help="The engine's batch limit, recorded.")
@click.option("--concurrency", help="Comma-separated levels, e.g. 1,2,4,8.")
@click.option("--shapes", help="INPUT/OUTPUT token pairs, e.g. 128/128,1024/256.")
@click.option("--requests", type=int, help="Completed requests per level, at least.")
@click.option("--api", type=click.Choice(["completions", "chat"]), default="completions")
@click.option("--api-key-env", help="Send this env variable's value as bearer key.")
@click.option("--quick", is_flag=True, help="A small sweep that ends in about a minute.")
@click.option("--note", help="Appended to the profile's source: what engine, which machine.")
def profile(
    endpoint: str,
    out: Path,
    concurrency: str | None,
    shapes: str | None,
    requests: int | None,
    api: str,
    api_key_env: str | None,
    quick: bool,
    note: str | None,
    **target: Any,
) -> None:
    """Sweep concurrency and request shapes against an endpoint; write an engine profile."""
    from weir.engines.profiler import QUICK, ProfileTarget, Sweep, profile_endpoint, write_profile

    updates: dict[str, Any] = {"api": api}
    if concurrency:
        updates["concurrency"] = _ints(concurrency)
    if shapes:
        updates["shapes"] = _shapes(shapes)
    if requests:
        updates["requests_per_level"] = requests
    base = QUICK if quick else Sweep()
    sweep = Sweep.model_validate({**base.model_dump(), **updates})
    key = api_key_from_env(api_key_env)
    try:
        measured = asyncio.run(
            profile_endpoint(endpoint, ProfileTarget.model_validate(target), sweep, key)
        )
    except EngineError as exc:
        raise click.ClickException(str(exc)) from exc
    if note:
        measured = measured.model_copy(update={"source": f"{measured.source}. {note}"})
    write_profile(measured, out)
    for p in measured.points:
        click.echo(
            f"c={p.concurrency:<4} in={p.input_tokens:<6} out={p.output_tokens:<5} "
            f"ttft p50/p95 {p.ttft_p50_s:.3f}/{p.ttft_p95_s:.3f} s  "
            f"itl p50/p95 {p.itl_p50_s * 1000:.1f}/{p.itl_p95_s * 1000:.1f} ms  "
            f"{p.output_tokens_per_s:.1f} tok/s"
        )
    click.echo(f"wrote {out}")


def _pairs(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


@click.command("engine-spec")
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True, help="Deployment name.")
@click.option("--namespace", default="default", show_default=True)
@click.option("--replicas", default=1, show_default=True)
@click.option("--cache/--no-cache", default=True, show_default=True, help="Weights cache PVC.")
@click.option("--cache-size", default="200Gi", show_default=True)
@click.option("--storage-class", help="Cache storage class (default: the cluster's).")
@click.option("--hf-secret", help="Secret holding the Hugging Face token (key: --hf-secret-key).")
@click.option("--hf-secret-key", default="token", show_default=True)
@click.option("--node-selector", multiple=True, help="KEY=VALUE, repeatable.")
@click.option("--toleration", multiple=True, help="Taint key tolerated (Exists), repeatable.")
@click.option("--image", help="Override the pinned TensorRT-LLM image.")
def engine_spec(
    recipe: Path,
    name: str,
    namespace: str,
    replicas: int,
    cache: bool,
    cache_size: str,
    storage_class: str | None,
    hf_secret: str | None,
    hf_secret_key: str,
    node_selector: tuple[str, ...],
    toleration: tuple[str, ...],
    image: str | None,
) -> None:
    """Print the Kubernetes objects of a TensorRT-LLM recipe as YAML (for kubectl apply)."""
    import yaml

    from weir.engines.cache import CacheSettings
    from weir.engines.launch import Placement, SecretKeyRef
    from weir.engines.recipes import load_recipe, render_recipe

    try:
        loaded = load_recipe(recipe)
        if image:
            loaded = loaded.model_copy(
                update={"launch": loaded.launch.model_copy(update={"image": image})}
            )
        placement = Placement(
            node_selector=_pairs(node_selector),
            tolerations=tuple({"key": k, "operator": "Exists"} for k in toleration),
        )
        objects = render_recipe(
            loaded,
            name=name,
            namespace=namespace,
            placement=placement,
            replicas=replicas,
            hf_token=SecretKeyRef(name=hf_secret, key=hf_secret_key) if hf_secret else None,
            cache=CacheSettings(size=cache_size, storage_class=storage_class) if cache else None,
        )
    except EngineError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)
