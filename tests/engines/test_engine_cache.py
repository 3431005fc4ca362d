"""Engine cache specs and the cold-start estimator."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weir.engines.cache import CacheKey, CacheSettings, CacheSource, cache_fill_job, cache_pvc
from weir.engines.coldstart import (
    GB,
    ColdStartSettings,
    ReplicaStartState,
    estimate_cold_start,
    warm_and_cold,
)
from weir.engines.errors import SpecError
from weir.engines.launch import SecretKeyRef

KEY = CacheKey(
    model="meta-llama/Llama-3.1-8B-Instruct",
    revision="0e9e39f",
    precision="fp8",
    tensor_parallel=1,
    gpu_type="H100-SXM-80GB",
)
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_claim_name_is_stable_and_changes_with_every_field() -> None:
    assert KEY.claim_name() == CacheKey(**KEY.model_dump()).claim_name()
    assert KEY.claim_name().startswith("weir-cache-llama-3-1-8b-instruct-")
    names = {KEY.claim_name()}
    for change in (
        {"revision": "other"},
        {"precision": "bf16"},
        {"tensor_parallel": 2},
        {"gpu_type": "H200"},
        {"trtllm_version": "1.1.0"},
        {"model": "meta-llama/Llama-3.1-8B"},
    ):
        names.add(KEY.model_copy(update=change).claim_name())
    assert len(names) == 7


@given(st.text(min_size=1, max_size=200))
def test_claim_name_is_a_valid_object_name(model: str) -> None:
    name = CacheKey(model=model, precision="bf16", tensor_parallel=1, gpu_type="x").claim_name()
    assert len(name) <= 63
    assert DNS1123.match(name)


def test_pvc_and_hf_fill_job() -> None:
    settings = CacheSettings(storage_class="fast", size="50Gi")
    pvc = cache_pvc(KEY, "prod", settings)
    assert pvc["metadata"]["name"] == KEY.claim_name()
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert pvc["spec"]["storageClassName"] == "fast"
    assert json.loads(pvc["metadata"]["annotations"]["weir.dev/cache-key"])["precision"] == "fp8"
    source = CacheSource(credentials=SecretKeyRef(name="hf-token", key="token"))
    job = cache_fill_job(KEY, "prod", source, settings)
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == KEY.claim_name()
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    assert "value" not in env["HF_TOKEN"]
    assert env["WEIR_MODEL"]["value"] == KEY.model
    assert "snapshot_download" in pod["containers"][0]["command"][-1]


def test_object_store_fill_uses_secret_env() -> None:
    source = CacheSource(
        kind="object-store", url="s3://bucket/llama", credentials=SecretKeyRef(name="aws")
    )
    job = cache_fill_job(KEY, "prod", source, CacheSettings())
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "aws"}}]
    assert "aws s3 sync" in container["command"][-1]
    with pytest.raises(ValueError, match="s3://"):
        CacheSource(kind="object-store", url="https://x")


def test_cold_start_phases_follow_cache_state() -> None:
    weights = 16 * GB
    warm, cold = warm_and_cold(weights)
    warm_phases, cold_phases = dict(warm.phases), dict(cold.phases)
    assert warm_phases["node_provisioning"] == 0 and warm_phases["image_pull"] == 0
    assert cold_phases["node_provisioning"] == pytest.approx(410)
    assert cold_phases["image_pull"] == pytest.approx(18.5 * GB / (5.6 * GB / 101))
    assert warm_phases["weights_load"] < cold_phases["weights_download"]
    assert 120 < warm.total_s < 300
    assert 10 * 60 < cold.total_s < 20 * 60
    assert warm.total_s < cold.total_s


def test_cold_start_settings_override_and_reject_impossible_state() -> None:
    fast = ColdStartSettings(warmup_s=0, container_start_s=0, weights_load_bytes_per_s=GB)
    state = ReplicaStartState(
        node_available=True, image_cached=True, weights_cached=True, weights_bytes=10 * GB
    )
    assert estimate_cold_start(state, fast).total_s == pytest.approx(10)
    with pytest.raises(SpecError):
        estimate_cold_start(state.model_copy(update={"node_available": False}))
