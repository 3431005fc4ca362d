"""What the API server and Pod Security "restricted" would refuse, as plain checks.

Written from the Kubernetes validation rules (apimachinery's IsDNS1123Label,
IsDNS1035Label, IsQualifiedName, IsValidLabelValue; the Pod Security Standards
page), independently of weir's models, so a test can ask of any object weir
builds: would the cluster take it? Every function returns a list of problems,
each naming the path, empty when the object is fine.
"""

from __future__ import annotations

import re
from typing import Any

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
# Services must be DNS-1035 labels; these kinds take DNS subdomains.
_SUBDOMAIN_KINDS = {
    "ConfigMap",
    "Deployment",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "PodDisruptionBudget",
    "NetworkPolicy",
    "Secret",
}
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def is_dns_label(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL.fullmatch(value))


def is_dns1035_label(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL_1035.fullmatch(value))


def is_dns_subdomain(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 253 and bool(_SUBDOMAIN.fullmatch(value))


def is_label_key(value: object) -> bool:
    if not isinstance(value, str):
        return False
    prefix, slash, name = value.rpartition("/")
    if slash and not is_dns_subdomain(prefix):
        return False
    return len(name) <= 63 and bool(_QUALIFIED_NAME.fullmatch(name))


def is_label_value(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 63 and bool(_LABEL_VALUE.fullmatch(value))


def label_problems(labels: object, where: str) -> list[str]:
    if not isinstance(labels, dict):
        return [f"{where}: not a map"]
    problems = [f"{where}: bad key {k!r}" for k in labels if not is_label_key(k)]
    return problems + [f"{where}.{k}: bad value {v!r}" for k, v in labels.items()
                       if not is_label_value(v)]  # fmt: skip


def name_problems(kind: str, name: object) -> list[str]:
    if kind == "Service":
        ok = is_dns1035_label(name)
    elif kind in _SUBDOMAIN_KINDS:
        ok = is_dns_subdomain(name)
    else:
        ok = is_dns_subdomain(name)
    return [] if ok else [f"{kind} metadata.name {name!r} is not a valid name"]


def _text_problems(value: object, where: str) -> list[str]:
    if not isinstance(value, str) or not value:
        return [f"{where}: empty or not a string"]
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return [f"{where}: control characters in {value!r}"]
    return []


def _toleration_problems(toleration: dict[str, Any], where: str) -> list[str]:
    problems = []
    key, operator = toleration.get("key", ""), toleration.get("operator", "Equal")
    if key and not is_label_key(key):
        problems.append(f"{where}.key: {key!r} is not a label key")
    if operator not in ("Equal", "Exists"):
        problems.append(f"{where}.operator: {operator!r}")
    if operator == "Exists" and toleration.get("value"):
        problems.append(f"{where}.value: must be empty when operator is Exists")
    if operator == "Equal" and not is_label_value(toleration.get("value", "")):
        problems.append(f"{where}.value: {toleration.get('value')!r} is not a label value")
    if toleration.get("effect") not in (None, "", "NoSchedule", "PreferNoSchedule", "NoExecute"):
        problems.append(f"{where}.effect: {toleration.get('effect')!r}")
    return problems


def pod_spec_problems(spec: dict[str, Any], where: str) -> list[str]:
    """What the API server would refuse in a pod spec (the fields weir writes)."""
    problems: list[str] = []
    volumes = {v.get("name") for v in spec.get("volumes", [])}
    problems += [f"{where}.volumes: bad name {n!r}" for n in volumes if not is_dns_label(n)]
    for i, c in enumerate([*spec.get("initContainers", []), *spec.get("containers", [])]):
        at = f"{where}.containers[{i}]"
        if not is_dns_label(c.get("name")):
            problems.append(f"{at}.name: {c.get('name')!r}")
        image = c.get("image")
        if not isinstance(image, str) or not image or image != image.strip() or " " in image:
            problems.append(f"{at}.image: {image!r}")
        for j, arg in enumerate([*c.get("command", []), *c.get("args", [])]):
            problems += _text_problems(arg, f"{at}.args[{j}]")
        for env in c.get("env", []):
            if not _ENV_NAME.fullmatch(str(env.get("name", ""))):
                problems.append(f"{at}.env: bad name {env.get('name')!r}")
        for mount in c.get("volumeMounts", []):
            if mount.get("name") not in volumes:
                problems.append(f"{at}.volumeMounts: {mount.get('name')!r} is no volume")
    problems += label_problems(spec.get("nodeSelector", {}), f"{where}.nodeSelector")
    for i, toleration in enumerate(spec.get("tolerations", [])):
        problems += _toleration_problems(toleration, f"{where}.tolerations[{i}]")
    return problems


def object_problems(obj: dict[str, Any]) -> list[str]:
    """What the API server would refuse in one object weir applies."""
    kind, meta = obj.get("kind", "?"), obj.get("metadata", {})
    problems = name_problems(kind, meta.get("name"))
    problems += label_problems(meta.get("labels", {}), f"{kind} {meta.get('name')} labels")
    spec = obj.get("spec", {})
    selector = spec.get("selector", {})
    if isinstance(selector, dict):
        labels = selector.get("matchLabels", selector)
        problems += label_problems(labels, f"{kind} {meta.get('name')} selector")
    template = spec.get("template")
    if template is not None:
        where = f"{kind} {meta.get('name')} pod"
        problems += label_problems(template["metadata"].get("labels", {}), f"{where} labels")
        problems += pod_spec_problems(template["spec"], where)
    return problems


def _context(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    own = container.get("securityContext", {})
    return own[key] if key in own else pod.get("securityContext", {}).get(key)


def restricted_problems(spec: dict[str, Any], where: str = "pod") -> list[str]:
    """Pod Security Standards "restricted" (v1.34), plus readOnlyRootFilesystem."""
    problems: list[str] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            problems.append(f"{where}.{flag} must not be set")
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"{where}.volumes[{volume.get('name')}]: {sorted(kinds)} not allowed")
    if spec.get("securityContext", {}).get("runAsUser") == 0:
        problems.append(f"{where}.securityContext.runAsUser must not be 0")
    for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        at, own = f"{where}.containers[{c.get('name')}]", c.get("securityContext", {})
        if _context(spec, c, "runAsNonRoot") is not True:
            problems.append(f"{at}: runAsNonRoot must be true")
        if _context(spec, c, "runAsUser") == 0:
            problems.append(f"{at}: runAsUser must not be 0")
        seccomp = _context(spec, c, "seccompProfile") or {}
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{at}: seccompProfile must be RuntimeDefault or Localhost")
        if own.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: allowPrivilegeEscalation must be false")
        if own.get("privileged"):
            problems.append(f"{at}: privileged")
        capabilities = own.get("capabilities", {})
        if "ALL" not in capabilities.get("drop", []):
            problems.append(f"{at}: capabilities must drop ALL")
        if set(capabilities.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{at}: capabilities may add only NET_BIND_SERVICE")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{at}: hostPort")
        if own.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: readOnlyRootFilesystem must be true")
    return problems
