"""Spec fuzzing: mutate valid objects, then judge what weir's validation made of them.

One mutation engine serves the hypothesis test (tests/api/test_spec_fuzz.py,
which draws the `random.Random` so failures shrink) and the counting run that
reports before/after numbers:

    .venv/bin/python tests/support/specfuzz.py -n 12000 --seed 1

Each object is one of the committed examples (and the bench scenarios' pools,
deployment and endpoint, and an example deployment naming a weights Secret)
with one to three mutations: a leaf replaced by a hostile value (huge,
negative, NaN, wrong type, long, spaced, unicode, upper-case, shell), a key
dropped or added, a subtree replaced, the name changed, or a semantic trap
(every pool at maxReplicas 0 with no hosted endpoint, a toleration Exists
with a value, an odd node selector).

The verdict of one object:
- refused: validation raised SpecError, and every problem in it names a field;
- crash: anything else raised, by validation or by building the children;
- nonsense: accepted, yet an independent check (tests/support/k8srules.py and
  the rules below) finds a child the API server would refuse, a value no
  deployment means, or the router refusing its own policy file;
- clean: accepted and sensible.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ValidationError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.k8srules import object_problems  # noqa: E402
from weir.api import SpecError  # noqa: E402
from weir.api.resources import DEFINITIONS  # noqa: E402
from weir.controller.children import Inputs, InvalidReferenceError, Owner, desired_children  # noqa: E402
from weir.router.config import RouterPolicy  # noqa: E402

try:  # the whole-object check (names too); older trees validated the spec alone
    from weir.api.resources import validate_resource as _validate_resource
except ImportError:  # pragma: no cover - only when measuring an older tree
    _validate_resource = None


def _spec_only(body: dict[str, Any]) -> BaseModel:
    definition = next((d for d in DEFINITIONS if d.kind == body.get("kind")), None)
    if definition is None:
        raise SpecError(f"kind: {body.get('kind')!r}")
    try:
        return definition.spec_model.model_validate(body.get("spec"))
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()]
        raise SpecError("\n".join([f"{definition.kind} spec is invalid:", *lines])) from exc


validate: Callable[[dict[str, Any]], BaseModel] = _validate_resource or _spec_only


def _examples() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [d for d in docs if str(d.get("apiVersion", "")).startswith("weir.dev/")]


def _scenario_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted((REPO / "bench" / "scenarios").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        for name, spec in raw.get("pools", {}).items():
            objects.append(_object("CapacityPool", name, spec))
        if "deployment" in raw:
            objects.append(_object("InferenceDeployment", f"bench-{path.stem}", raw["deployment"]))
        if "hosted" in raw:
            objects.append(_object("HostedEndpoint", "hosted", raw["hosted"]))
    return objects


def _object(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "weir.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def _gated() -> dict[str, Any]:
    """The first example deployment with a weights Secret, so mutations reach that field."""
    body = copy.deepcopy(next(d for d in _examples() if d["kind"] == "InferenceDeployment"))
    body["metadata"]["name"] = f"{body['metadata']['name']}-gated"
    body["spec"]["model"]["weightsSecretRef"] = {"name": "hf-token", "key": "token"}
    return body


BASES = _examples() + _scenario_objects() + [_gated()]
EXAMPLE = _examples()  # the first example's pools and endpoint back a deployment's children

HOSTILE: tuple[Any, ...] = (
    -1, 0, 1, 7, 2**31, 2**63, 10**18, -(10**9),
    -1.5, 0.0, -0.0, 0.5, 1e-300, 1e18, 1e300, float("nan"), float("inf"), float("-inf"),
    True, False, None, [], [1], {}, {"a": 1},
    "", " ", "x", "5", "1e3", "true", "null", "A", "UPPER-Case", "with space", "tab\there",
    "new\nline", "nul\x00", "-leading", "trailing-", "a..b", "a/b/c", "../../etc/passwd",
    "/abs/path", "ünïcode", "emoji-🙂", "$(rm -rf /)", "--flag=x", "a" * 64, "b" * 254,
    "c" * 5000, "http://x", "https://", "ftp://host/x", "https://user:pw@host/v1",
    "javascript:alert(1)", "Exists", "Equal", "spot", "on-demand", "NoSchedule",
    "recommend", "fp8", "fp4", "nvcr.io/x", "image:latest", "image@sha256:abc",
)  # fmt: skip


def _leaves(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [prefix] + [p for k, v in node.items() for p in _leaves(v, (*prefix, k))]
    if isinstance(node, list):
        return [prefix] + [p for i, v in enumerate(node) for p in _leaves(v, (*prefix, i))]
    return [prefix]


def _hostile(rnd: random.Random, current: Any) -> Any:
    if rnd.random() < 0.3 and isinstance(current, int | float) and not isinstance(current, bool):
        return rnd.choice([current * 1e6, -current, current + 0.5, current * 10**12, current - 1])
    if rnd.random() < 0.3 and isinstance(current, str):
        return rnd.choice([current + " ", current * 20, current.upper(), current + "\n",
                           f"{current}/x", current[:-1], "-" + current, current + "."])  # fmt: skip
    return _any(rnd)


def _any(rnd: random.Random) -> Any:
    """A hostile value, copied: HOSTILE holds lists and dicts, and a later mutation of the
    same body (popping, adding a key) must not change them for every later example, which
    Hypothesis then reports as inconsistent data generation."""
    return copy.deepcopy(rnd.choice(HOSTILE))


def _set(body: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _semantic(rnd: random.Random, body: dict[str, Any]) -> None:
    spec = body["spec"]
    kind = body["kind"]
    if kind == "InferenceDeployment":
        pools = spec.get("pools")
        for binding in pools if isinstance(pools, list) else []:
            if isinstance(binding, dict):
                binding["minReplicas"], binding["maxReplicas"] = 0, 0
        if rnd.random() < 0.5:
            spec.pop("hosted", None)
        elif isinstance(spec.get("hosted"), dict):
            spec["hosted"]["maxShare"] = 0
    elif kind == "CapacityPool":
        choice = rnd.randrange(3)
        if choice == 0:
            spec["tolerations"] = [{"key": "k", "operator": "Exists", "value": _any(rnd)}]
        elif choice == 1:
            spec["nodeSelector"] = {rnd.choice(HOSTILE[30:]): _any(rnd)}
        else:
            spec["nodeSelector"] = {f"k{i}": "v" for i in range(rnd.choice([33, 100]))}
    else:
        spec["requestsPerMinute"] = rnd.choice([10**18, 2**63, 0, -5])


def mutate(rnd: random.Random) -> dict[str, Any]:
    """One mutated object (a fresh copy of a base)."""
    body = copy.deepcopy(rnd.choice(BASES))
    for _ in range(rnd.choice([1, 1, 2, 3])):
        paths = [("spec", *p) for p in _leaves(body["spec"])] + [("metadata", "name")]
        path = rnd.choice(paths)
        op = rnd.randrange(10)
        if op == 0:
            _semantic(rnd, body)
        elif op == 1:
            body["metadata"]["name"] = _hostile(rnd, body["metadata"]["name"])
        elif op == 2 and len(path) > 2:
            parent: Any = body
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, list) and parent:
                parent.pop()
        elif op == 3:
            target: Any = body
            for key in path if path[0] == "spec" else ("spec",):
                target = target[key]
            if isinstance(target, dict):
                target[rnd.choice(["extra", "maxreplicas", "Replicas", "x-y"])] = 1
        elif len(path) > 1:
            current: Any = body
            for key in path:
                current = current[key]
            _set(body, path, _hostile(rnd, current))
    return body


# ---------------------------------------------------------------- the verdicts


@dataclass(frozen=True)
class Verdict:
    outcome: str  # clean | refused | crash | nonsense
    detail: str = ""


def _all_field_names() -> set[str]:
    names: set[str] = {"metadata"}

    def visit(model: type[BaseModel]) -> None:
        for name, info in model.model_fields.items():
            names.update({name, info.alias or name})
            for arg in _model_args(info.annotation):
                visit(arg)

    for definition in DEFINITIONS:
        visit(definition.spec_model)
    return names


def _model_args(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in getattr(annotation, "__args__", ()) for m in _model_args(a)]


FIELD_NAMES = _all_field_names()


def unnamed_problems(message: str) -> list[str]:
    """Lines of a SpecError that name no field (neither by path nor in their text)."""
    lines = message.splitlines()
    problems = [line.strip() for line in lines[1:] if line.startswith("  ")] or [message]
    unnamed = []
    for problem in problems:
        path = problem.partition(": ")[0]
        if path and path != "(root)" and not path.startswith("metadata.name must"):
            continue
        words = set(re.findall(r"[A-Za-z]+", problem))
        if not words & FIELD_NAMES:
            unnamed.append(problem)
    return unnamed


def _numbers_and_strings(node: Any, path: str = "spec") -> list[str]:
    problems = []
    if isinstance(node, dict):
        for key, value in node.items():
            problems += _numbers_and_strings(value, f"{path}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            problems += _numbers_and_strings(value, f"{path}[{i}]")
    elif isinstance(node, float | int) and not isinstance(node, bool):
        if not math.isfinite(node) or abs(node) > 1e7:
            problems.append(f"{path}: {node!r} is not a quantity any deployment means")
    elif isinstance(node, str):
        may_be_empty = path.endswith((".value", ".effect")) or ".nodeSelector." in path
        if not node and not may_be_empty:  # label and taint values, "all effects"
            problems.append(f"{path}: empty")
        longest = 2048 if path == "spec.baseUrl" else 512
        if len(node) > longest or any(c.isspace() or ord(c) < 32 for c in node):
            problems.append(f"{path}: {node[:40]!r}... is no name, reference or URL")
    return problems


def _base_url_problems(url: str) -> list[str]:
    """http(s), a host, no credentials (plain http is the router's to allow per host)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username:
        return [f"spec.baseUrl: {url[:60]!r} is not an http(s) URL with a host"]
    if parts.password or parts.query or parts.fragment:
        return [f"spec.baseUrl: {url[:60]!r} carries credentials, a query or a fragment"]
    return []


def _semantic_problems(kind: str, spec: dict[str, Any]) -> list[str]:
    problems = []
    if kind == "CapacityPool":
        for t in spec.get("tolerations", []):
            if t.get("operator") == "Exists" and t.get("value"):
                problems.append("spec.tolerations: Exists with a value")
    if kind == "InferenceDeployment":
        hosted = spec.get("hosted")
        serving = hosted is not None and hosted.get("maxShare", 0) > 0
        if not serving and all(b["maxReplicas"] == 0 for b in spec["pools"]):
            problems.append("spec.pools: every pool at maxReplicas 0 and no hosted endpoint")
    if kind == "HostedEndpoint":
        problems += _base_url_problems(spec["baseUrl"])
    return problems


def _children_of(body: dict[str, Any], model: BaseModel) -> list[dict[str, Any]]:
    """The children weir would apply with this object in place of the example's own."""
    bases = {d["kind"]: d for d in reversed(EXAMPLE)}
    deployment = validate(bases["InferenceDeployment"])
    pools = {d["metadata"]["name"]: validate(d) for d in EXAMPLE if d["kind"] == "CapacityPool"}
    hosted = validate(bases["HostedEndpoint"])
    name = str(bases["InferenceDeployment"]["metadata"]["name"])
    if body["kind"] == "InferenceDeployment":
        deployment, name = model, str(body["metadata"]["name"])
        tp = model.model.tensor_parallel  # type: ignore[attr-defined]
        template = next(iter(pools.values())).model_copy(update={"gpus_per_replica": tp})
        for binding in model.pools:  # type: ignore[attr-defined]
            pools.setdefault(binding.pool, template)
    elif body["kind"] == "CapacityPool":
        pool = str(body["metadata"]["name"])
        first = deployment.pools[0].model_copy(update={"pool": pool})  # type: ignore[attr-defined]
        deployment, pools = deployment.model_copy(update={"pools": (first,)}), {pool: model}
    else:
        hosted = model
    inputs = Inputs(Owner(name, "serving", "uid"), deployment, pools, hosted, {})  # type: ignore[arg-type]
    return desired_children(inputs)


def judge(body: dict[str, Any]) -> Verdict:
    """What weir made of one object."""
    try:
        model = validate(body)
    except SpecError as exc:
        unnamed = unnamed_problems(str(exc))
        return (
            Verdict("crash", f"error names no field: {unnamed}") if unnamed else Verdict("refused")
        )
    except Exception as exc:  # noqa: BLE001 - any other exception is the finding
        return Verdict("crash", f"validation raised {type(exc).__name__}: {exc}")
    dumped = model.model_dump(by_alias=True, mode="json")
    problems = _numbers_and_strings(dumped) + _semantic_problems(body["kind"], dumped)
    try:
        children = _children_of(body, model)
    except InvalidReferenceError:
        children = []  # refused at reconcile with a condition naming the reference: fine
    except Exception as exc:  # noqa: BLE001
        return Verdict("crash", f"children raised {type(exc).__name__}: {exc}")
    for child in children:
        problems += object_problems(child)
        if child["kind"] == "ConfigMap" and "policy.json" in child.get("data", {}):
            try:
                RouterPolicy.model_validate_json(child["data"]["policy.json"])
            except ValidationError as exc:
                problems.append(f"router refuses its policy: {exc.errors()[0]['loc']}")
    if problems:
        return Verdict("nonsense", "; ".join(problems[:3]))
    return Verdict("clean")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=12000, help="objects to try")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=5, help="examples shown per outcome")
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    counts: Counter[str] = Counter()
    shown: dict[str, list[str]] = {}
    for _ in range(args.n):
        body = mutate(rnd)
        verdict = judge(body)
        counts[verdict.outcome] += 1
        if verdict.outcome in ("crash", "nonsense"):
            shown.setdefault(verdict.outcome, []).append(f"{body['kind']}: {verdict.detail}")
    print(f"tried {args.n}: " + ", ".join(f"{k} {counts[k]}" for k in
                                          ("clean", "refused", "crash", "nonsense")))  # fmt: skip
    for outcome, lines in shown.items():
        print(f"-- {outcome} (first {args.show}):")
        for line in lines[: args.show]:
            print("  ", line[:300])


if __name__ == "__main__":
    main()
