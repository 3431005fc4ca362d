"""TensorRT-LLM launch specs: the Kubernetes objects of one `trtllm-serve` replica.

weir targets **TensorRT-LLM 1.2.0** (image `nvcr.io/nvidia/tensorrt-llm/release:1.2.0`,
overridable per deployment). It runs the PyTorch backend (the only one left in
the newest releases), started as `trtllm-serve <model> --host 0.0.0.0 ...` with
the flags documented in `tensorrt_llm/commands/serve.py`. Everything else goes
into the extra LLM API options file, mounted from a ConfigMap:
`enable_iter_perf_stats` (iteration stats feed the queue and KV-cache gauges)
and `return_perf_metrics` (without it `trtllm-serve` creates no Prometheus
collector at all). The Prometheus metrics are then served on the HTTP port at
`/prometheus/metrics` (`/metrics` is JSON and drains on read, so it is not
scraped). Some releases label every series `model_name="undefined"`, so PromQL
should select engines by pod labels, not by `model_name`. The metric set
changes between releases: probe a new pin before moving it.

Engine pods meet Pod Security "restricted": non-root (the NGC image's root user
is not needed to serve), RuntimeDefault seccomp, no privilege escalation, no
capabilities, and a read-only root filesystem. What `trtllm-serve` writes gets
an emptyDir: /tmp (HF_HOME, downloads when no weight cache is mounted) and a
cache folder that HOME and XDG_CACHE_HOME point at (Triton, torch inductor and
FlashInfer JIT caches, TensorRT-LLM's own); /dev/shm is a memory emptyDir.

All functions are pure: typed inputs in, plain dicts (valid Kubernetes JSON) out.
"""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from weir.engines.errors import SpecError

TRTLLM_VERSION = "1.2.0"
DEFAULT_IMAGE = f"nvcr.io/nvidia/tensorrt-llm/release:{TRTLLM_VERSION}"
HTTP_PORT = 8000
HEALTH_PATH = "/health"
METRICS_PATH = "/prometheus/metrics"
OPTIONS_FILE = "extra-llm-api-options.yaml"
OPTIONS_DIR = "/etc/trtllm"
MODEL_MOUNT = "/models"
CACHE_MODEL_DIR = "model"  # the fill Job writes the weights to /models/model
ENGINE_UID = 1000  # any non-root uid: the image's files are world-readable
TMP_DIR = "/tmp"
RUNTIME_CACHE_DIR = "/var/cache/trtllm"  # HOME: JIT and compile caches land in ~/.cache

Precision = Literal["bf16", "fp16", "fp8", "nvfp4", "int4_awq"]


class TrtllmLaunch(BaseModel):
    """What to serve and with which engine limits (one replica)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(min_length=1, description="Hugging Face id, or a path on a mounted volume.")
    revision: str | None = Field(default=None, description="Hugging Face revision (id only).")
    precision: Precision = Field(
        default="bf16", description="Checkpoint precision; fp8/nvfp4 need a quantized checkpoint."
    )
    tensor_parallel: int = Field(default=1, ge=1, le=8, description="GPUs per replica.")
    max_batch_size: int = Field(default=256, ge=1, description="Running requests per replica.")
    max_num_tokens: int = Field(default=8192, ge=1, description="Tokens per engine step.")
    max_seq_len: int = Field(default=8192, ge=2, description="Prompt plus output, tokens.")
    kv_cache_free_gpu_memory_fraction: float = Field(
        default=0.9, gt=0, le=1, description="GPU memory left after weights given to KV cache."
    )
    enable_chunked_prefill: bool = Field(default=False, description="Split long prompts.")
    trust_remote_code: bool = Field(default=False, description="Run the model repo's code.")
    image: str = Field(default=DEFAULT_IMAGE, description="Container image, pinned tag.")
    extra_options: dict[str, Any] = Field(
        default_factory=dict, description="More LlmArgs fields for the options file."
    )

    @model_validator(mode="after")
    def _check(self) -> TrtllmLaunch:
        if self.revision is not None and self.model.startswith("/"):
            raise ValueError("revision applies to a Hugging Face id, not to a local path")
        if ":" not in self.image.rsplit("/", 1)[-1] and "@" not in self.image:
            raise ValueError(f"image {self.image!r} must carry a pinned tag or digest")
        return self


class SecretKeyRef(BaseModel):
    """A key of a Secret: the value itself never passes through weir."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Secret name, in the workload's namespace.")
    key: str = Field(default="token", min_length=1, description="Key inside the Secret.")

    def env(self, variable: str) -> dict[str, Any]:
        return {
            "name": variable,
            "valueFrom": {"secretKeyRef": {"name": self.name, "key": self.key}},
        }


class Placement(BaseModel):
    """Where and with what the pod runs: from the CapacityPool."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    gpu_resource: str = Field(default="nvidia.com/gpu", description="Extended resource name.")
    cpu: str = Field(default="8", description="CPU request per replica.")
    memory: str = Field(default="64Gi", description="Memory request per replica.")
    shm_size: str = Field(default="16Gi", description="/dev/shm size (NCCL, tensor parallel).")
    startup_timeout_s: int = Field(
        default=1800, ge=60, description="How long weights load and warm-up may take."
    )
    termination_grace_s: int = Field(
        default=30, ge=0, description="Drain time; spot notices give 30-120 s."
    )


def llm_api_options(launch: TrtllmLaunch) -> dict[str, Any]:
    """The extra LLM API options (`--extra_llm_api_options`), iteration stats on."""
    options: dict[str, Any] = {
        "enable_iter_perf_stats": True,
        "return_perf_metrics": True,
        "kv_cache_config": {"enable_block_reuse": True},
    }
    if launch.precision in ("fp8", "nvfp4"):
        options["kv_cache_config"]["dtype"] = "fp8"
    for key, value in launch.extra_options.items():
        if key in ("enable_iter_perf_stats", "return_perf_metrics") and value is not True:
            raise SpecError(f"{key} must stay true: weir's metrics depend on it")
        options[key] = value
    return options


def serve_args(launch: TrtllmLaunch, model_path: str | None = None) -> list[str]:
    """`trtllm-serve` arguments; `model_path` replaces the id when weights are cached."""
    args = [
        model_path or launch.model,
        "--host", "0.0.0.0",
        "--port", str(HTTP_PORT),
        "--backend", "pytorch",
        "--tp_size", str(launch.tensor_parallel),
        "--max_batch_size", str(launch.max_batch_size),
        "--max_num_tokens", str(launch.max_num_tokens),
        "--max_seq_len", str(launch.max_seq_len),
        "--kv_cache_free_gpu_memory_fraction", str(launch.kv_cache_free_gpu_memory_fraction),
        "--extra_llm_api_options", f"{OPTIONS_DIR}/{OPTIONS_FILE}",
    ]  # fmt: skip
    if launch.revision is not None and model_path is None:
        args += ["--revision", launch.revision]
    if launch.enable_chunked_prefill:
        args.append("--enable_chunked_prefill")
    if launch.trust_remote_code:
        args.append("--trust_remote_code")
    return args


def options_configmap(name: str, namespace: str, launch: TrtllmLaunch) -> dict[str, Any]:
    """The ConfigMap holding the extra LLM API options file."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": _labels(launch)},
        "data": {OPTIONS_FILE: yaml.safe_dump(llm_api_options(launch), sort_keys=True)},
    }


def _labels(launch: TrtllmLaunch) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "trtllm-serve",
        "app.kubernetes.io/component": "engine",
        "app.kubernetes.io/managed-by": "weir",
        "weir.dev/trtllm-version": _label_value(launch.image.rsplit(":", 1)[-1]),
    }


def _label_value(value: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in value)[:63]
    return cleaned.strip("-_.") or "unknown"


def pod_security_context(uid: int) -> dict[str, Any]:
    """Pod Security "restricted" at the pod: non-root, RuntimeDefault seccomp.

    fsGroup makes the mounted volumes (emptyDirs, a weight cache) writable or
    readable by `uid` whatever the image's own user is.
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Pod Security "restricted" at the container, and a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _probe(period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": HEALTH_PATH, "port": "http"},
        "periodSeconds": period_s,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def engine_container(
    launch: TrtllmLaunch,
    placement: Placement,
    *,
    model_path: str | None = None,
    hf_token: SecretKeyRef | None = None,
) -> dict[str, Any]:
    """The `trtllm-serve` container: command, probes, metrics port, GPUs, mounts."""
    gpus = str(launch.tensor_parallel)
    mounts = [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "llm-api-options", "mountPath": OPTIONS_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": TMP_DIR},
        {"name": "runtime-cache", "mountPath": RUNTIME_CACHE_DIR},
    ]
    if model_path is not None:
        mounts.append({"name": "model-cache", "mountPath": MODEL_MOUNT, "readOnly": True})
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": f"{TMP_DIR}/hf-home"},
        {"name": "HOME", "value": RUNTIME_CACHE_DIR},
        {"name": "XDG_CACHE_HOME", "value": f"{RUNTIME_CACHE_DIR}/.cache"},
    ]
    if hf_token is not None and model_path is None:
        env.append(hf_token.env("HF_TOKEN"))
    return {
        "name": "trtllm-serve",
        "image": launch.image,
        "command": ["trtllm-serve"],
        "args": serve_args(launch, model_path),
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": {
            "requests": {
                "cpu": placement.cpu,
                "memory": placement.memory,
                placement.gpu_resource: gpus,
            },
            "limits": {"memory": placement.memory, placement.gpu_resource: gpus},
        },
        "startupProbe": _probe(10, max(1, placement.startup_timeout_s // 10)),
        "readinessProbe": _probe(5, 3),
        "livenessProbe": _probe(15, 4),
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
    }


def engine_pod_spec(
    launch: TrtllmLaunch,
    placement: Placement,
    *,
    options_configmap_name: str,
    cache_claim: str | None = None,
    hf_token: SecretKeyRef | None = None,
) -> dict[str, Any]:
    """Pod spec: the container plus /dev/shm, the options file and the weight cache."""
    model_path = f"{MODEL_MOUNT}/{CACHE_MODEL_DIR}" if cache_claim is not None else None
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": placement.shm_size}},
        {"name": "llm-api-options", "configMap": {"name": options_configmap_name}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "runtime-cache", "emptyDir": {}},
    ]
    if cache_claim is not None:
        volumes.append(
            {
                "name": "model-cache",
                "persistentVolumeClaim": {"claimName": cache_claim, "readOnly": True},
            }
        )
    spec: dict[str, Any] = {
        "containers": [
            engine_container(launch, placement, model_path=model_path, hf_token=hf_token)
        ],
        "volumes": volumes,
        "terminationGracePeriodSeconds": placement.termination_grace_s,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(ENGINE_UID),
        # the engine never calls the API server; a model repo's code (trust_remote_code)
        # must not find a token to do so
        "automountServiceAccountToken": False,
    }
    if placement.node_selector:
        spec["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        spec["tolerations"] = [dict(t) for t in placement.tolerations]
    return spec


def engine_deployment(
    name: str,
    namespace: str,
    launch: TrtllmLaunch,
    placement: Placement,
    *,
    replicas: int,
    labels: dict[str, str] | None = None,
    cache_claim: str | None = None,
    hf_token: SecretKeyRef | None = None,
) -> dict[str, Any]:
    """A Deployment of `replicas` engine pods; also renders its options ConfigMap name."""
    if replicas < 0:
        raise SpecError(f"replicas must be >= 0, got {replicas}")
    pod_labels = {**_labels(launch), **(labels or {}), "weir.dev/engine": name}
    selector = {"weir.dev/engine": name}
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(HTTP_PORT),
        "prometheus.io/path": METRICS_PATH,
    }
    pod = engine_pod_spec(
        launch,
        placement,
        options_configmap_name=options_configmap_name(name),
        cache_claim=cache_claim,
        hf_token=hf_token,
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": pod_labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations},
                "spec": pod,
            },
        },
    }


def options_configmap_name(deployment_name: str) -> str:
    """Name of the options ConfigMap that belongs to an engine Deployment."""
    return f"{deployment_name}-llm-api-options"[:253]
