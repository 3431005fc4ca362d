"""Launch recipes agree with their profiles and render through `weir engine-spec`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from weir.api.profile import load_profile
from weir.cli import main
from weir.engines.coldstart import warm_and_cold
from weir.engines.recipes import load_recipe
from weir.refengine.emulated import EmulatedEngine

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "engines" / "trtllm" / "recipes").glob("*.yaml"))


def test_there_is_a_recipe_per_profile() -> None:
    profiles = {p.stem for p in (ROOT / "engines" / "profiles").glob("*.yaml")}
    assert {r.stem for r in RECIPES} == profiles


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_matches_its_profile(path: Path) -> None:
    recipe = load_recipe(path)
    profile = load_profile(ROOT / "engines" / "profiles" / f"{recipe.profile}.yaml")
    assert recipe.profile == path.stem
    assert recipe.gpu_type == profile.gpu
    assert recipe.launch.precision == profile.precision
    assert recipe.launch.tensor_parallel == profile.tensor_parallel
    assert recipe.launch.max_batch_size == profile.max_concurrency
    if profile.prefill_chunk_tokens is not None:
        assert recipe.launch.max_num_tokens == profile.prefill_chunk_tokens
    engine = EmulatedEngine(profile)  # the emulated engine replays every shipped profile
    assert engine.pool.max_running == profile.max_concurrency
    warm, cold = warm_and_cold(recipe.weights_bytes)
    assert warm.total_s < cold.total_s


def test_engine_spec_prints_applyable_yaml() -> None:
    path = ROOT / "engines" / "trtllm" / "recipes" / "llama-3.3-70b-fp8-h100-tp2.yaml"
    args = [
        "engine-spec", str(path), "--name", "llama70", "--namespace", "prod",
        "--replicas", "2", "--hf-secret", "hf", "--node-selector", "weir.dev/pool=h100-spot",
        "--toleration", "nvidia.com/gpu",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.output))
    kinds = [d["kind"] for d in docs]
    assert kinds == ["PersistentVolumeClaim", "Job", "ConfigMap", "Deployment"]
    deployment = docs[-1]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"weir.dev/pool": "h100-spot"}
    assert pod["containers"][0]["args"][0] == "/models/model"
    claim = {v["name"]: v for v in pod["volumes"]}["model-cache"]["persistentVolumeClaim"]
    assert claim["claimName"] == docs[0]["metadata"]["name"]
    no_cache = CliRunner().invoke(main, [*args, "--no-cache"])
    assert [d["kind"] for d in yaml.safe_load_all(no_cache.output)] == ["ConfigMap", "Deployment"]
