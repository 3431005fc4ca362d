"""`weir whatif` on the data users have: their resources, its assumptions, --out, ties.

Two commands simulate (minutes of trace at a request every few seconds, so
each runs in seconds): one from a folder with nothing of weir's in it, on an
OpenAI usage export, writing --out; one on the user's own resource YAML with
a CSV of their own. The rest is pure: the verdict's ties, the scenario built
from resources and its errors, the defaults shipped as package data.
"""

from __future__ import annotations

import json
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from weir.api import SpecError, load_profile, load_profiles
from weir.sim.cli import whatif
from weir.sim.generate import generate
from weir.sim.scenario import load_scenario
from weir.sim.user_resources import DEFAULT_PROFILES, DEFAULT_SCENARIO, scenario_from_resources
from weir.sim.whatif import decide

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data" / "whatif"

POOLS = """\
apiVersion: v1
kind: List
items:
- apiVersion: weir.dev/v1alpha1
  kind: CapacityPool
  metadata: {name: gpu-od, resourceVersion: "4711", uid: 0b1c}
  spec: {gpuType: NVIDIA-H100-80GB-HBM3, gpusPerReplica: 1, dollarsPerGpuHour: 3.10,
         capacityType: on-demand, coldStartSeconds: 240}
- apiVersion: weir.dev/v1alpha1
  kind: CapacityPool
  metadata: {name: gpu-spot}
  spec: {gpuType: NVIDIA-H100-80GB-HBM3, gpusPerReplica: 1, dollarsPerGpuHour: 1.70,
         capacityType: spot, interruptionsPerInstanceMonth: 0.2, interruptionNoticeSeconds: 120,
         coldStartSeconds: 240}
"""
DEPLOYMENT = """\
apiVersion: v1
kind: Secret
metadata: {name: key, namespace: team-a}
stringData: {api-key: replace-me}
---
apiVersion: weir.dev/v1alpha1
kind: HostedEndpoint
metadata: {name: hosted-8b, namespace: team-a}
spec:
  baseUrl: https://api.example.invalid/v1
  model: meta-llama/Llama-3.1-8B-Instruct-Turbo
  secretRef: {name: key, key: api-key}
  dollarsPerMillionInputTokens: 0.18
  dollarsPerMillionCachedInputTokens: 0.09
  dollarsPerMillionOutputTokens: 0.18
  latency: {ttftP50Seconds: 0.3, ttftP95Seconds: 0.8, itlSeconds: 0.02}
  requestsPerMinute: 600
---
apiVersion: weir.dev/v1alpha1
kind: InferenceDeployment
metadata: {name: chat-8b, namespace: team-a}
spec:
  model: {name: meta-llama/Llama-3.1-8B-Instruct, precision: fp8, tensorParallel: 1}
  slo: {ttftSeconds: 2.0, itlSeconds: 0.05, percentile: 95, usefulTokenTarget: 0.98}
  cost: {budgetDollarsPerHour: 50}
  pools:
    - {pool: gpu-od, minReplicas: 0, maxReplicas: 3}
    - {pool: gpu-spot, minReplicas: 0, maxReplicas: 3}
  hosted: {endpoint: hosted-8b, maxShare: 0.9, maxDollarsPerHour: 20}
"""


def _summary(cost: float, useful: float = 1.0) -> dict[str, float]:
    return {"dollars_per_million_useful_tokens": cost, "useful_token_fraction": useful}


def test_verdict_calls_a_tie_a_tie_and_never_zero_percent() -> None:
    equal = decide({"static_p95": _summary(5.0), "static_mix": _summary(5.0)}, 0.99)
    assert equal.cheapest == "static_mix" and equal.tied == ("static_p95",)
    assert "about the same (within 1% of each other)" in equal.text()
    assert "0%" not in equal.text() and "below" not in equal.text()
    close = decide({"weir": _summary(4.98), "all_hosted": _summary(5.0)}, 0.99)
    assert close.tied == ("all_hosted",) and "about the same" in close.text()
    apart = decide({"weir": _summary(4.75), "all_hosted": _summary(5.0)}, 0.99)
    assert "That is 5.0% below the next best, all hosted" in apart.text()
    assert apart.saving == pytest.approx(0.05)
    far = decide(
        {"weir": _summary(3.5), "all_hosted": _summary(5.0), "static_p95": _summary(9.0, 0.9)},
        0.99,
    )
    assert "30% below" in far.text() and "dedicated on-demand GPUs (90.0% useful)" in far.text()
    none = decide({"weir": _summary(float("inf"), 0.0), "all_hosted": _summary(2.0, 0.5)}, 0.99)
    assert none.cheapest is None and none.text().startswith("No option reaches 99%")


def test_resources_become_the_scenario(tmp_path: Path) -> None:
    pools, deployment = tmp_path / "pools.yaml", tmp_path / "deployment.yaml"
    pools.write_text(POOLS)
    deployment.write_text(DEPLOYMENT)
    built = scenario_from_resources([pools, deployment], load_profiles(DEFAULT_PROFILES))
    sc = built.scenario
    assert sc.name == "chat-8b" and sc.on_demand_pool == "gpu-od"
    assert sc.pools["gpu-spot"].dollars_per_gpu_hour == 1.70
    assert sc.hosted is not None and sc.hosted.model.endswith("8B-Instruct-Turbo")
    assert set(sc.profile_names().values()) == {"llama-3.1-8b-fp8-h100-tp1"}
    assert any("ignored objects of other kinds: Secret key" in n for n in built.notes)


def test_resources_errors_name_what_is_missing(tmp_path: Path) -> None:
    profiles = load_profiles(DEFAULT_PROFILES)
    deployment = tmp_path / "deployment.yaml"
    deployment.write_text(DEPLOYMENT)
    with pytest.raises(SpecError, match=r"uses CapacityPools \['gpu-od', 'gpu-spot'\]"):
        scenario_from_resources([deployment], profiles)
    two = tmp_path / "two.yaml"
    second = DEPLOYMENT.split("---\n")[-1].replace("chat-8b", "chat-b")
    two.write_text(POOLS + "---\n" + DEPLOYMENT + "---\n" + second)
    with pytest.raises(SpecError, match=r"several InferenceDeployments \(\['chat-8b', 'chat-b'\]"):
        scenario_from_resources([two], profiles)
    assert scenario_from_resources([two], profiles, "chat-b").scenario.name == "chat-b"
    other = tmp_path / "other-gpu.yaml"
    other.write_text(POOLS.replace("NVIDIA-H100-80GB-HBM3", "NVIDIA-L4") + "---\n" + DEPLOYMENT)
    with pytest.raises(SpecError, match=r"no engine profile .* on NVIDIA-L4 .*--profiles DIR"):
        scenario_from_resources([other], profiles)
    bad = tmp_path / "bad.yaml"
    bad.write_text(POOLS.replace("gpusPerReplica: 1,", "gpusPerReplica: 0,", 1))
    with pytest.raises(SpecError, match=r"(?s)bad\.yaml document 1 item 0.*gpusPerReplica"):
        scenario_from_resources([bad, deployment], profiles)


def test_defaults_are_package_data_and_match_the_repository() -> None:
    shipped = yaml.safe_load(DEFAULT_SCENARIO.read_text())
    assert shipped == yaml.safe_load((ROOT / "bench/scenarios/default.yaml").read_text())
    assert load_scenario(DEFAULT_SCENARIO).name == "default"
    sources = sorted(p.name for p in (ROOT / "engines/profiles").glob("*.yaml"))
    assert sorted(p.name for p in DEFAULT_PROFILES.glob("*.yaml")) == sources
    for name in sources:
        shipped_profile = load_profile(DEFAULT_PROFILES / name)
        assert shipped_profile == load_profile(ROOT / "engines/profiles" / name), name
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["weir"]
    package = ROOT / "operator/weir"
    for path in (package / "sim/defaults").rglob("*"):
        if path.is_file():
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch(relative, g) for g in globs), f"{relative} is not package data"


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise AssertionError(f"summary.json holds {constant}")

    return json.loads(text, parse_constant=refuse)


def test_whatif_runs_from_any_directory_and_writes_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    trace = DATA / "openai_usage_completions.json"
    result = CliRunner().invoke(whatif, ["--trace", str(trace), "--out", "report"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "read as openai-usage (detected): 20 requests" in out
    assert "the default scenario shipped with weir" in out
    assert "model: meta-llama/Llama-3.3-70B-Instruct (fp8, TP2)" in out
    assert "paid for once" in out and "Cheapest option" in out
    summary = _strict_json((elsewhere / "report/summary.json").read_text())
    assert isinstance(summary, dict)
    assert summary["trace"]["format"] == "openai-usage" and summary["trace"]["requests"] == 20
    assert summary["trace"]["models"]["gpt-4o-2024-08-06"] == 2
    assert summary["scenario"]["name"] == "default"
    assert summary["scenario"]["spec"]["pools"]["on-demand"]["dollarsPerGpuHour"] == 3.9
    facts = summary["assumptions"]
    assert "TTFT <= 1.5 s and ITL <= 60 ms" in facts["slo"]
    assert "not abandoned, timed out or failed" in facts["useful_token"]
    assert "$3.90/GPU-hour" in facts["prices"]["on-demand"]
    assert set(summary["options"]) == {"all_hosted", "static_p95", "static_mix", "weir"}
    assert summary["verdict"]["text"] in " ".join(out.split())
    for name in ("options.png", "replicas.png", "hosted_share.png", "ttft_p95.png"):
        assert (elsewhere / "report" / name).read_bytes()[:4] == b"\x89PNG", name
    with Image.open(elsewhere / "report/options.png") as image:
        title = image.info["Title"]
    assert title == "weir whatif: trace openai_usage_completions.json, scenario default"


def test_whatif_on_the_users_resources_and_csv(tmp_path: Path) -> None:
    (tmp_path / "pools.yaml").write_text(POOLS)
    (tmp_path / "deployment.yaml").write_text(DEPLOYMENT)
    trace = tmp_path / "gateway.csv"
    rows = [
        f"{round(r.arrival_s * 1000)},{r.input_tokens},{r.output_tokens},chat"
        for r in generate("steady", 180.0, 0.3, seed=4)
    ]
    trace.write_text("t_ms,in,out,route\n" + "\n".join(rows) + "\n")
    args = [
        *("--trace", str(trace), "--columns", "timestamp=t_ms,input=in,output=out"),
        *("--time-unit", "ms", "--resources", str(tmp_path / "pools.yaml")),
        *("--resources", str(tmp_path / "deployment.yaml")),
    ]
    result = CliRunner().invoke(whatif, args)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"read as csv (detected): {len(rows)} requests over 3.0 min" in out
    assert "csv columns timestamp=t_ms, input=in, output=out" in out
    assert "scenario: chat-8b: your resources" in out
    assert "gpu-od: on-demand NVIDIA-H100-80GB-HBM3 x1: $3.10/GPU-hour" in out
    assert "meta-llama/Llama-3.1-8B-Instruct-Turbo: $0.18/M input" in out
    assert "target 98.0% of generated tokens useful" in out
    assert "chat-8b: what each option would cost" in out
    both = CliRunner().invoke(
        whatif, ["--trace", str(trace), "--scenario", "s.yaml", "--resources", "r.yaml"]
    )
    assert both.exit_code != 0 and "alternatives" in both.output
    odd = tmp_path / "odd.csv"
    odd.write_text("when,a,b\n1,2,3\n")
    refused = CliRunner().invoke(whatif, ["--trace", str(odd)])
    assert refused.exit_code != 0
    assert "cannot tell the format of" in refused.output and "odd.csv" in refused.output
