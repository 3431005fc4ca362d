"""The user's own CapacityPool, HostedEndpoint and InferenceDeployment YAML as a scenario.

`weir whatif` answers best with the prices, limits and SLO the user already
wrote for the operator, so it reads those files as they are applied (several
documents per file, `kind: List` as `kubectl get -o yaml` writes it, status
ignored) and validates each object as the API server would. The deployment
picks its pools and hosted endpoint by name; each pool's engine profile is
matched the way the operator matches it (weir.planner.profiles). What only a
simulation needs (scrape timing, prefix cache, stresses) keeps the
scenario's defaults, and the notes say so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from weir.api import (
    CapacityPoolSpec,
    EngineProfile,
    HostedEndpointSpec,
    InferenceDeploymentSpec,
    SpecError,
)
from weir.api.profile import load_profiles
from weir.api.resources import DEFINITIONS, validate_resource
from weir.planner.profiles import match_profiles
from weir.planner.types import PlanningError
from weir.sim.scenario import Scenario, load_scenario, load_scenario_profiles

_KINDS = {d.kind for d in DEFINITIONS}
# Shipped with the package (pyproject package-data), so whatif runs from any directory.
DEFAULTS = Path(__file__).parent / "defaults"
DEFAULT_SCENARIO = DEFAULTS / "scenario.yaml"
DEFAULT_PROFILES = DEFAULTS / "profiles"


@dataclass(frozen=True)
class _Object:
    kind: str
    name: str
    namespace: str
    spec: Any
    source: str


def _documents(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except OSError as exc:
        raise SpecError(f"cannot read resources file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"resources file {path} is not valid YAML: {exc}") from exc
    for i, doc in enumerate(docs, start=1):
        if doc is None:
            continue
        if not isinstance(doc, Mapping):
            raise SpecError(f"{path}: document {i} is not a mapping (an object with a kind)")
        items = doc.get("items")
        if str(doc.get("kind", "")).endswith("List") and isinstance(items, list):
            for j, item in enumerate(items):
                if isinstance(item, Mapping):
                    yield f"{path} document {i} item {j}", item
        else:
            yield f"{path} document {i}", doc


def _objects(paths: Sequence[Path]) -> tuple[list[_Object], list[str]]:
    found: list[_Object] = []
    ignored: list[str] = []
    for path in paths:
        for where, doc in _documents(path):
            kind = str(doc.get("kind"))
            meta = doc.get("metadata")
            meta = meta if isinstance(meta, Mapping) else {}
            name = str(meta.get("name", ""))
            if kind not in _KINDS:
                ignored.append(f"{kind} {name}".strip())
                continue
            try:
                spec = validate_resource(doc)
            except SpecError as exc:
                raise SpecError(f"{where}: {exc}") from exc
            namespace = str(meta.get("namespace") or "default")
            found.append(_Object(kind, name, namespace, spec, where))
    return found, ignored


def _one_deployment(objects: list[_Object], name: str | None, files: str) -> _Object:
    deployments = [o for o in objects if o.kind == "InferenceDeployment"]
    if name is not None:
        deployments = [o for o in deployments if o.name == name]
    if len(deployments) == 1:
        return deployments[0]
    names = [o.name for o in objects if o.kind == "InferenceDeployment"]
    if not deployments:
        wanted = f"an InferenceDeployment named {name!r}" if name else "an InferenceDeployment"
        raise SpecError(f"{files}: no {wanted} (found: {names or 'none'})")
    raise SpecError(
        f"{files}: several InferenceDeployments ({names}); choose one with --deployment"
    )


def _endpoint(objects: list[_Object], deployment: _Object, files: str) -> HostedEndpointSpec | None:
    spec: InferenceDeploymentSpec = deployment.spec
    if spec.hosted is None:
        return None
    named = [o for o in objects if o.kind == "HostedEndpoint" and o.name == spec.hosted.endpoint]
    same = [o for o in named if o.namespace == deployment.namespace] or named
    if not same:
        raise SpecError(
            f"InferenceDeployment {deployment.name} sends traffic to HostedEndpoint "
            f"{spec.hosted.endpoint!r}, which {files} does not define"
        )
    endpoint: HostedEndpointSpec = same[0].spec
    return endpoint


@dataclass(frozen=True)
class WhatifScenario:
    """A scenario, its pools' engine profiles, where it came from and what it assumed."""

    scenario: Scenario
    profiles: dict[str, EngineProfile]
    source: str
    notes: tuple[str, ...] = ()


def scenario_from_resources(
    paths: Sequence[Path],
    profiles: Mapping[str, EngineProfile],
    deployment_name: str | None = None,
) -> WhatifScenario:
    """The scenario of one InferenceDeployment with the pools and endpoint it names.

    `profiles` are the engine profiles by file stem; every pool the deployment
    uses must match one (same model, GPU family, precision and TP).
    """
    files = ", ".join(str(p) for p in paths)
    objects, ignored = _objects(paths)
    deployment = _one_deployment(objects, deployment_name, files)
    spec: InferenceDeploymentSpec = deployment.spec
    pools: dict[str, CapacityPoolSpec] = {
        o.name: o.spec for o in objects if o.kind == "CapacityPool"
    }
    missing = [b.pool for b in spec.pools if b.pool not in pools]
    if missing:
        raise SpecError(
            f"InferenceDeployment {deployment.name} uses CapacityPools {missing}, which {files} "
            f"does not define (it defines: {sorted(pools) or 'none'})"
        )
    used = {b.pool: pools[b.pool] for b in spec.pools}
    try:
        matched = match_profiles(spec, used, profiles)
    except PlanningError as exc:
        raise SpecError(f"{exc} (or pass --profiles DIR)") from exc
    stems = {id(profile): stem for stem, profile in profiles.items()}
    pool_profiles = {pool: stems[id(profile)] for pool, profile in matched.items()}
    on_demand = [
        b.pool for b in spec.pools if used[b.pool].capacity_type == "on-demand" and b.max_replicas
    ]
    scenario = Scenario(
        name=deployment.name,
        description=f"InferenceDeployment {deployment.namespace}/{deployment.name} from {files}",
        profile=pool_profiles[spec.pools[0].pool],
        pool_profiles=pool_profiles,
        pools=used,
        hosted=_endpoint(objects, deployment, files),
        deployment=spec,
        on_demand_pool=on_demand[0] if on_demand else spec.pools[0].pool,
    )
    notes = [
        f"InferenceDeployment {deployment.name}, pools "
        f"{', '.join(used)}, hosted endpoint {spec.hosted.endpoint if spec.hosted else 'none'}",
        "simulation-only settings keep their defaults: Prometheus scraped every "
        f"{scenario.telemetry.scrape_interval_seconds:g} s with "
        f"{scenario.telemetry.scrape_delay_seconds:g} s lag, a shared prefix cache of "
        f"{scenario.prefix_cache_tokens:,} tokens, no stresses (weir.sim.stresses)",
    ]
    if not on_demand:
        notes.append(
            f"no on-demand pool may run replicas; the static baselines size pool "
            f"{scenario.on_demand_pool}"
        )
    if ignored:
        notes.append(f"ignored objects of other kinds: {', '.join(ignored)}")
    return WhatifScenario(scenario, dict(matched), f"your resources ({files})", tuple(notes))


def whatif_scenario(
    scenario: Path | None,
    resources: Sequence[Path],
    deployment_name: str | None,
    profiles: Path | None,
) -> WhatifScenario:
    """The scenario `weir whatif` runs: the user's resources, a scenario file, or the default."""
    directory = profiles or DEFAULT_PROFILES
    if resources:
        return scenario_from_resources(resources, load_profiles(directory), deployment_name)
    loaded = load_scenario(scenario or DEFAULT_SCENARIO)
    by_pool = load_scenario_profiles(loaded, directory)
    if scenario is not None:
        return WhatifScenario(loaded, by_pool, f"scenario file {scenario}")
    return WhatifScenario(
        loaded,
        by_pool,
        "the default scenario shipped with weir",
        (
            "your own prices and limits: --resources with your CapacityPool, HostedEndpoint and "
            "InferenceDeployment YAML",
        ),
    )
