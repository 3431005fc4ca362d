"""Model and engine cache: a PersistentVolumeClaim per cache key, filled once by a Job.

The first replica of a model pays for the download; every later one mounts the
filled volume read-only and only loads weights from it, which is the largest
cut in cold start that needs no GPU-side tricks (see `coldstart`). The key is
everything that changes the bytes on the volume: model, revision, precision,
tensor parallelism, GPU type and TensorRT-LLM version. Its hash names the
claim, so two deployments that need the same bytes share one cache.

The Hugging Face token comes from a Secret through `valueFrom`: weir only ever
handles the Secret's name and key, never the value.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from weir.engines.launch import (
    CACHE_MODEL_DIR,
    DEFAULT_IMAGE,
    MODEL_MOUNT,
    TRTLLM_VERSION,
    SecretKeyRef,
)

DONE_MARKER = ".weir-cache-complete"
OBJECT_STORE_IMAGE = "amazon/aws-cli:2.27.50"


class CacheKey(BaseModel):
    """What determines the cached bytes; equal keys share one volume."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, description="Hugging Face id or object-store URL.")
    revision: str = Field(default="main", min_length=1, description="Commit or branch.")
    precision: str = Field(min_length=1)
    tensor_parallel: int = Field(ge=1)
    gpu_type: str = Field(min_length=1, description="GPU product, e.g. H100-SXM-80GB.")
    trtllm_version: str = Field(default=TRTLLM_VERSION, min_length=1)

    def digest(self) -> str:
        """A stable 12-hex-digit hash of the key (field order and Python version free)."""
        canonical = json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def claim_name(self) -> str:
        """DNS-1123 name: a readable model slug plus the digest."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.model.rsplit("/", 1)[-1].lower()).strip("-")
        return f"weir-cache-{slug[:30].rstrip('-') or 'model'}-{self.digest()}"

    def labels(self) -> dict[str, str]:
        return {
            "app.kubernetes.io/managed-by": "weir",
            "app.kubernetes.io/component": "model-cache",
            "weir.dev/cache-key": self.digest(),
        }


class CacheSource(BaseModel):
    """Where the fill Job copies from: the Hugging Face hub, or an object store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["huggingface", "object-store"] = "huggingface"
    url: str | None = Field(default=None, description="s3:// URL for the object store.")
    credentials: SecretKeyRef | None = Field(
        default=None, description="HF token, or a Secret with AWS_* keys for the object store."
    )

    @model_validator(mode="after")
    def _check(self) -> CacheSource:
        if self.kind == "object-store" and not (self.url or "").startswith("s3://"):
            raise ValueError("an object-store source needs an s3:// url")
        return self


class CacheSettings(BaseModel):
    """Storage of the cache volume."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: str = Field(default="200Gi", description="Claim size; weights plus headroom.")
    storage_class: str | None = Field(default=None, description="None: the cluster default.")
    access_mode: Literal["ReadWriteMany", "ReadOnlyMany", "ReadWriteOnce"] = Field(
        default="ReadWriteMany", description="Many readers: replicas on several nodes share it."
    )
    fill_deadline_s: int = Field(default=7200, ge=60, description="Job activeDeadlineSeconds.")
    fill_image: str = Field(default=DEFAULT_IMAGE, description="Has python and huggingface_hub.")


def cache_pvc(key: CacheKey, namespace: str, settings: CacheSettings) -> dict[str, Any]:
    """The claim that holds the weights of one cache key."""
    spec: dict[str, Any] = {
        "accessModes": [settings.access_mode],
        "resources": {"requests": {"storage": settings.size}},
    }
    if settings.storage_class is not None:
        spec["storageClassName"] = settings.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": key.claim_name(),
            "namespace": namespace,
            "labels": key.labels(),
            "annotations": {"weir.dev/cache-key": key.model_dump_json()},
        },
        "spec": spec,
    }


_HF_SCRIPT = """\
set -eu
target="{mount}/{dir}"
if [ -f "$target/{done}" ]; then echo "cache already filled"; exit 0; fi
python3 -c 'import os, sys
from huggingface_hub import snapshot_download
snapshot_download(repo_id=sys.argv[1], revision=sys.argv[2], local_dir=sys.argv[3],
                  token=os.environ.get("HF_TOKEN") or None)' \
  "$WEIR_MODEL" "$WEIR_REVISION" "$target"
echo "$WEIR_CACHE_KEY" > "$target/{done}"
"""

_S3_SCRIPT = """\
set -eu
target="{mount}/{dir}"
if [ -f "$target/{done}" ]; then echo "cache already filled"; exit 0; fi
aws s3 sync --only-show-errors "$WEIR_SOURCE_URL" "$target"
echo "$WEIR_CACHE_KEY" > "$target/{done}"
"""


def _fill_container(key: CacheKey, source: CacheSource, settings: CacheSettings) -> dict[str, Any]:
    fmt = {"mount": MODEL_MOUNT, "dir": CACHE_MODEL_DIR, "done": DONE_MARKER}
    env: list[dict[str, Any]] = [{"name": "WEIR_CACHE_KEY", "value": key.model_dump_json()}]
    if source.kind == "huggingface":
        image, script = settings.fill_image, _HF_SCRIPT.format(**fmt)
        env += [
            {"name": "WEIR_MODEL", "value": key.model},
            {"name": "WEIR_REVISION", "value": key.revision},
            {"name": "HF_HOME", "value": f"{MODEL_MOUNT}/.hf-home"},
        ]
        if source.credentials is not None:
            env.append(source.credentials.env("HF_TOKEN"))
        env_from: list[dict[str, Any]] = []
    else:
        image, script = OBJECT_STORE_IMAGE, _S3_SCRIPT.format(**fmt)
        env.append({"name": "WEIR_SOURCE_URL", "value": source.url or ""})
        creds = source.credentials
        env_from = [{"secretRef": {"name": creds.name}}] if creds is not None else []
    container: dict[str, Any] = {
        "name": "fill",
        "image": image,
        "command": ["/bin/sh", "-c", script],
        "env": env,
        "volumeMounts": [{"name": "model-cache", "mountPath": MODEL_MOUNT}],
        "resources": {"requests": {"cpu": "2", "memory": "8Gi"}},
    }
    if env_from:
        container["envFrom"] = env_from
    return container


def cache_fill_job(
    key: CacheKey, namespace: str, source: CacheSource, settings: CacheSettings
) -> dict[str, Any]:
    """The Job that fills the claim once; it exits at once when the marker exists."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{key.claim_name()}-fill",
            "namespace": namespace,
            "labels": key.labels(),
        },
        "spec": {
            "backoffLimit": 3,
            "activeDeadlineSeconds": settings.fill_deadline_s,
            "template": {
                "metadata": {"labels": key.labels()},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [_fill_container(key, source, settings)],
                    "volumes": [
                        {
                            "name": "model-cache",
                            "persistentVolumeClaim": {"claimName": key.claim_name()},
                        }
                    ],
                },
            },
        },
    }
