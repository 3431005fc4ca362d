"""Launch recipes: a named, reviewed TensorRT-LLM configuration per model and GPU.

A recipe (`engines/trtllm/recipes/*.yaml`) pins what the capacity profile of
the same name was measured or derived with: precision, tensor parallelism,
batch and token limits. Rendering a recipe gives the Kubernetes objects of one
engine Deployment, with its options ConfigMap and, when caching, the cache
claim and fill Job; `weir engine-spec` prints them for `kubectl apply`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from weir.engines import launch
from weir.engines.cache import CacheKey, CacheSettings, CacheSource, cache_fill_job, cache_pvc
from weir.engines.errors import SpecError
from weir.engines.launch import Placement, SecretKeyRef, TrtllmLaunch


class Recipe(BaseModel):
    """One reviewed launch configuration and the profile it belongs to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str = Field(min_length=1, description="Stem of the profile in engines/profiles/.")
    gpu_type: str = Field(min_length=1, description="GPU product, as in the profile.")
    weights_bytes: float = Field(gt=0, description="Checkpoint size, for cold-start estimates.")
    launch: TrtllmLaunch

    def cache_key(self, revision: str = "main") -> CacheKey:
        return CacheKey(
            model=self.launch.model,
            revision=self.launch.revision or revision,
            precision=self.launch.precision,
            tensor_parallel=self.launch.tensor_parallel,
            gpu_type=self.gpu_type,
            trtllm_version=self.launch.image.rsplit(":", 1)[-1],
        )


def load_recipe(path: Path) -> Recipe:
    try:
        return Recipe.model_validate(yaml.safe_load(path.read_text()))
    except OSError as exc:
        raise SpecError(f"cannot read recipe {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, ValidationError) as exc:
        raise SpecError(f"recipe {path} is invalid: {exc}") from exc


def render_recipe(
    recipe: Recipe,
    *,
    name: str,
    namespace: str,
    placement: Placement,
    replicas: int,
    hf_token: SecretKeyRef | None = None,
    cache: CacheSettings | None = None,
) -> list[dict[str, Any]]:
    """ConfigMap and Deployment; with `cache`, also the claim and its fill Job first."""
    objects: list[dict[str, Any]] = []
    claim = None
    if cache is not None:
        key = recipe.cache_key()
        claim = key.claim_name()
        objects.append(cache_pvc(key, namespace, cache))
        objects.append(cache_fill_job(key, namespace, CacheSource(credentials=hf_token), cache))
    cm_name = launch.options_configmap_name(name)
    objects.append(launch.options_configmap(cm_name, namespace, recipe.launch))
    objects.append(
        launch.engine_deployment(
            name,
            namespace,
            recipe.launch,
            placement,
            replicas=replicas,
            labels={"weir.dev/profile": recipe.profile},
            cache_claim=claim,
            hf_token=hf_token,
        )
    )
    return objects
