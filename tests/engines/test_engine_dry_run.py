"""Rendered engine objects pass a server-side dry run against the real local apiserver."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from weir.engines import launch
from weir.engines.cache import CacheKey, CacheSettings, CacheSource, cache_fill_job, cache_pvc
from weir.engines.launch import Placement, SecretKeyRef, TrtllmLaunch
from weir.engines.recipes import load_recipe, render_recipe

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


def test_every_recipe_renders_objects_the_apiserver_accepts(cluster, namespace):
    root = Path(__file__).resolve().parents[2] / "engines" / "trtllm" / "recipes"
    create = {
        "PersistentVolumeClaim": cluster.core.create_namespaced_persistent_volume_claim,
        "Job": client.BatchV1Api(cluster.api).create_namespaced_job,
        "ConfigMap": cluster.core.create_namespaced_config_map,
        "Deployment": cluster.apps.create_namespaced_deployment,
    }
    for path in sorted(root.glob("*.yaml")):
        objects = render_recipe(
            load_recipe(path),
            name=path.stem.replace(".", "-"),
            namespace=namespace,
            placement=PLACEMENT,
            replicas=1,
            hf_token=SecretKeyRef(name="hf-token"),
            cache=CacheSettings(),
        )
        for obj in objects:
            created = create[obj["kind"]](namespace, obj, dry_run="All")
            assert created.metadata.name == obj["metadata"]["name"]
