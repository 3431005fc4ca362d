"""Rendered engine objects pass a server-side dry run against the real local apiserver."""

from __future__ import annotations

from kubernetes import client

from weir.engines import launch
from weir.engines.cache import CacheKey, CacheSettings, CacheSource, cache_fill_job, cache_pvc
from weir.engines.launch import Placement, SecretKeyRef, TrtllmLaunch

LAUNCH = TrtllmLaunch(model="meta-llama/Llama-3.1-8B-Instruct", precision="fp8", max_batch_size=256)
PLACEMENT = Placement(
    node_selector={"weir.dev/pool": "h100-on-demand"},
    tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
)
KEY = CacheKey(model=LAUNCH.model, precision="fp8", tensor_parallel=1, gpu_type="H100")


def test_engine_and_cache_objects_pass_server_side_dry_run(cluster, namespace):
    core, apps = cluster.core, cluster.apps
    batch = client.BatchV1Api(cluster.api)
    token = SecretKeyRef(name="hf-token")
    name = "llama-8b"
    cm = launch.options_configmap(launch.options_configmap_name(name), namespace, LAUNCH)
    deployment = launch.engine_deployment(
        name, namespace, LAUNCH, PLACEMENT, replicas=2, cache_claim=KEY.claim_name()
    )
    uncached = launch.engine_deployment(
        f"{name}-hub", namespace, LAUNCH, PLACEMENT, replicas=1, hf_token=token
    )
    pvc = cache_pvc(KEY, namespace, CacheSettings())
    job = cache_fill_job(KEY, namespace, CacheSource(credentials=token), CacheSettings())
    s3_job = cache_fill_job(
        KEY.model_copy(update={"revision": "r2"}),
        namespace,
        CacheSource(kind="object-store", url="s3://b/m", credentials=SecretKeyRef(name="aws")),
        CacheSettings(),
    )
    results = [
        core.create_namespaced_config_map(namespace, cm, dry_run="All"),
        apps.create_namespaced_deployment(namespace, deployment, dry_run="All"),
        apps.create_namespaced_deployment(namespace, uncached, dry_run="All"),
        core.create_namespaced_persistent_volume_claim(namespace, pvc, dry_run="All"),
        batch.create_namespaced_job(namespace, job, dry_run="All"),
        batch.create_namespaced_job(namespace, s3_job, dry_run="All"),
    ]
    assert [r.metadata.name for r in results] == [
        cm["metadata"]["name"],
        name,
        f"{name}-hub",
        KEY.claim_name(),
        f"{KEY.claim_name()}-fill",
        s3_job["metadata"]["name"],
    ]
    served = results[1].spec.template.spec.containers[0]
    assert served.startup_probe.http_get.path == "/health"
    assert served.resources.limits["nvidia.com/gpu"] == "1"
