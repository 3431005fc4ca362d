"""TensorRT-LLM launch specs: the flags, paths and pieces TensorRT-LLM needs."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from weir.engines import launch
from weir.engines.errors import SpecError
from weir.engines.launch import Placement, SecretKeyRef, TrtllmLaunch

# Flags of `trtllm-serve` (tensorrt_llm/commands/serve.py), per serving-facts.md.
DOCUMENTED_FLAGS = {
    "--host", "--port", "--backend", "--tp_size", "--max_batch_size", "--max_num_tokens",
    "--max_seq_len", "--kv_cache_free_gpu_memory_fraction", "--extra_llm_api_options",
    "--revision", "--enable_chunked_prefill", "--trust_remote_code",
}  # fmt: skip

LLAMA_70B = TrtllmLaunch(
    model="nvidia/Llama-3.3-70B-Instruct-FP8",
    revision="abc123",
    precision="fp8",
    tensor_parallel=2,
    max_batch_size=128,
    max_num_tokens=8192,
    max_seq_len=16384,
)
SPOT = Placement(
    node_selector={"weir.dev/pool": "h100-spot"},
    tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
)


def _flag_values(args: list[str]) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else None
            values[arg] = None if nxt is None or nxt.startswith("--") else nxt
    return values


def test_serve_args_use_documented_flags_and_listen_on_all_interfaces() -> None:
    args = launch.serve_args(LLAMA_70B)
    assert args[0] == "nvidia/Llama-3.3-70B-Instruct-FP8"
    flags = _flag_values(args)
    assert set(flags) <= DOCUMENTED_FLAGS
    assert flags["--host"] == "0.0.0.0"
    assert flags["--port"] == "8000"
    assert flags["--backend"] == "pytorch"
    assert flags["--tp_size"] == "2"
    assert flags["--max_batch_size"] == "128"
    assert flags["--max_num_tokens"] == "8192"
    assert flags["--max_seq_len"] == "16384"
    assert flags["--revision"] == "abc123"
    assert flags["--extra_llm_api_options"] == "/etc/trtllm/extra-llm-api-options.yaml"


def test_cached_weights_replace_the_hub_id() -> None:
    args = launch.serve_args(LLAMA_70B, model_path="/models/model")
    assert args[0] == "/models/model"
    assert "--revision" not in args


def test_options_turn_on_iteration_stats_and_prometheus_collector() -> None:
    cm = launch.options_configmap("llama-llm-api-options", "prod", LLAMA_70B)
    options = yaml.safe_load(cm["data"]["extra-llm-api-options.yaml"])
    assert options["enable_iter_perf_stats"] is True
    assert options["return_perf_metrics"] is True
    assert options["kv_cache_config"]["dtype"] == "fp8"
    bad = LLAMA_70B.model_copy(update={"extra_options": {"enable_iter_perf_stats": False}})
    with pytest.raises(SpecError):
        launch.llm_api_options(bad)


def test_deployment_pod_template() -> None:
    dep = launch.engine_deployment(
        "llama", "prod", LLAMA_70B, SPOT, replicas=3, labels={"weir.dev/pool": "h100-spot"}
    )
    assert dep["spec"]["replicas"] == 3
    template = dep["spec"]["template"]
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/prometheus/metrics"
    assert annotations["prometheus.io/port"] == "8000"
    pod = template["spec"]
    assert pod["nodeSelector"] == {"weir.dev/pool": "h100-spot"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    (container,) = pod["containers"]
    assert container["image"] == "nvcr.io/nvidia/tensorrt-llm/release:1.2.0"
    assert container["command"] == ["trtllm-serve"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1800
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    assert volumes["llm-api-options"]["configMap"]["name"] == "llama-llm-api-options"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"dshm": "/dev/shm", "llm-api-options": "/etc/trtllm", "tmp": "/tmp", "runtime-cache": "/var/cache/trtllm"}  # noqa: E501 # fmt: skip


def test_cache_claim_is_mounted_read_only_and_token_comes_from_secret() -> None:
    token = SecretKeyRef(name="hf", key="token")
    cached = launch.engine_pod_spec(
        LLAMA_70B, SPOT, options_configmap_name="o", cache_claim="weir-cache-x", hf_token=token
    )
    claim = {v["name"]: v for v in cached["volumes"]}["model-cache"]["persistentVolumeClaim"]
    assert claim == {"claimName": "weir-cache-x", "readOnly": True}
    assert cached["containers"][0]["args"][0] == "/models/model"
    assert all(e["name"] != "HF_TOKEN" for e in cached["containers"][0]["env"])
    fresh = launch.engine_pod_spec(LLAMA_70B, SPOT, options_configmap_name="o", hf_token=token)
    env = {e["name"]: e for e in fresh["containers"][0]["env"]}
    assert env["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
    }


def test_inputs_are_validated() -> None:
    with pytest.raises(ValidationError):
        TrtllmLaunch(model="m", image="nvcr.io/nvidia/tensorrt-llm/release")
    with pytest.raises(ValidationError):
        TrtllmLaunch(model="/models/llama", revision="abc")
    with pytest.raises(ValidationError):
        TrtllmLaunch(model="m", precision="int2")  # type: ignore[arg-type]
    with pytest.raises(SpecError):
        launch.engine_deployment("x", "ns", LLAMA_70B, SPOT, replicas=-1)
