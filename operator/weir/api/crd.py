"""CustomResourceDefinitions generated from the pydantic models.

The models are the single source of truth: the API server validates what
users apply with the same bounds, enums and descriptions the planner relies
on, and `kubectl explain` shows the field descriptions. This module turns a
model's JSON Schema into a Kubernetes *structural* schema (no `$ref`, no
`anyOf` with null, OpenAPI v3.0 style exclusive bounds, no
`additionalProperties: false` beside `properties`) and wraps it in a CRD.

Cross-field rules that pydantic checks in validators are repeated as CEL
rules (`x-kubernetes-validations`) through the definitions' `SchemaPatch`es,
so the API server refuses them too, naming the field. Two rules are CEL by
construction: map keys (structural schemas have no `propertyNames` or
`patternProperties`, so a constrained key type becomes `self.all(k, ...)`)
and the object's name (`metadata.name` is only reachable from the root).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

GROUP = "weir.dev"
VERSION = "v1alpha1"

# Formats the API server understands; others (e.g. pydantic's "uri") are dropped.
_K8S_FORMATS = {"int32", "int64", "float", "double", "byte", "date", "date-time", "password"}
_DROPPED_KEYS = {"title", "$defs", "discriminator", "examples", "propertyNames"}

Schema = dict[str, Any]


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ScaleSubresource:
    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str | None = None


@dataclass(frozen=True)
class SchemaPatch:
    """CEL rules and list semantics added at one place of the spec schema.

    `path` walks property names, with "items" stepping into an array. These
    repeat the models' cross-field validators for the API server.
    """

    path: tuple[str, ...]
    rules: tuple[tuple[str, str, str], ...] = ()  # (CEL rule, message, fieldPath)
    extra: Schema = field(default_factory=dict)


@dataclass(frozen=True)
class NameRule:
    """What `metadata.name` must be, because weir derives child names and labels from it."""

    pattern: str
    max_length: int
    why: str

    def problem(self, name: object) -> str | None:
        """None when `name` is fine, else the message (the same as the API server's)."""
        if (
            isinstance(name, str)
            and len(name) <= self.max_length
            and _fullmatch(self.pattern, name)
        ):
            return None
        return self.message

    @property
    def message(self) -> str:
        return (
            f"metadata.name must match {self.pattern} and be at most {self.max_length} "
            f"characters ({self.why})"
        )

    def cel(self) -> Schema:
        rule = (
            f"self.metadata.name.size() <= {self.max_length}"
            f" && self.metadata.name.matches({_cel_string(self.pattern)})"
        )
        return {"rule": rule, "message": self.message}


def _fullmatch(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


def _cel_string(text: str) -> str:
    """A CEL single-quoted literal; the shared patterns avoid quotes and backslashes."""
    if "'" in text or "\\" in text:
        raise ValueError(f"pattern {text!r} cannot be a plain CEL literal")
    return f"'{text}'"


@dataclass(frozen=True)
class CrdDefinition:
    """What a CRD needs beyond the schemas: names, scope and presentation."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    namespaced: bool
    spec_model: type[BaseModel]
    status_model: type[BaseModel] | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    scale: ScaleSubresource | None = None
    categories: tuple[str, ...] = ("weir",)
    description: str = ""
    patches: tuple[SchemaPatch, ...] = ()
    name_rule: NameRule | None = None

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


def _resolve(node: Any, defs: Schema) -> Any:
    """Inline every `$ref` (structural schemas cannot reference)."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    return {key: _resolve(value, defs) for key, value in node.items()}


def _nullable(schema: Schema) -> Schema:
    """`anyOf: [X, {type: null}]` (an Optional field) becomes X with `nullable: true`."""
    options = schema.get("anyOf")
    if not options:
        return schema
    non_null = [o for o in options if o.get("type") != "null"]
    if len(non_null) != 1 or len(non_null) == len(options):
        raise ValueError(f"cannot express anyOf {options} in a structural schema")
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    merged = {**non_null[0], **rest, "nullable": True}
    if merged.get("default", ...) is None:
        del merged["default"]
    return merged


def _bounds(schema: Schema) -> Schema:
    """JSON Schema 2020 numeric exclusive bounds -> OpenAPI v3.0 boolean form."""
    out = dict(schema)
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = out.get(exclusive)
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[inclusive] = value
            out[exclusive] = True
    return out


def _map_keys(schema: Schema) -> Schema:
    """A map with constrained keys: the value schema moves to additionalProperties and
    the key's pattern and length become one CEL rule (structural schemas have neither
    patternProperties nor propertyNames)."""
    patterns = schema.get("patternProperties")
    names = schema.get("propertyNames")
    if not patterns and not names:
        return schema
    out = {k: v for k, v in schema.items() if k not in ("patternProperties", "propertyNames")}
    checks: list[str] = []
    if patterns:
        if len(patterns) != 1:
            raise ValueError(f"cannot express several key patterns {list(patterns)}")
        ((pattern, value),) = patterns.items()
        out["additionalProperties"] = value
        checks.append(f"k.matches({_cel_string(pattern)})")
    names = names or {}
    if "maxLength" in names:
        checks.insert(0, f"size(k) <= {names['maxLength']}")
    if "minLength" in names:
        checks.insert(0, f"size(k) >= {names['minLength']}")
    if "maxProperties" not in out:
        raise ValueError("a map with constrained keys needs max_length (CEL cost bound)")
    rule = f"self.all(k, {' && '.join(checks)})"
    message = (
        "every key must "
        + (f"match {next(iter(patterns))} and " if patterns else "")
        + f"be {names.get('minLength', 0)} to {names.get('maxLength', 'any')} characters"
    )
    out["x-kubernetes-validations"] = [{"rule": rule, "message": message}]
    return out


def structural(node: Any) -> Any:
    """Rewrite a resolved pydantic JSON Schema into a Kubernetes structural schema."""
    if isinstance(node, list):
        return [structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    schema = _bounds(_map_keys(_nullable(node)))
    out: Schema = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "format" and value not in _K8S_FORMATS:
            continue
        if key == "const":
            out["enum"] = [value]
            continue
        if key == "additionalProperties" and value is False:
            continue
        if key == "properties":
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = structural(value)
        else:
            out[key] = value
    if "prefixItems" in out:
        raise ValueError("fixed-length tuples have no structural schema; use tuple[X, ...]")
    if "properties" in out:
        out.setdefault("type", "object")
    return out


def model_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of one model, with wire (camelCase) names."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    resolved = _resolve({k: v for k, v in raw.items() if k != "$defs"}, defs)
    result: Schema = structural(resolved)
    return result


def _patched(schema: Schema, patches: tuple[SchemaPatch, ...]) -> Schema:
    for patch in patches:
        node = schema
        for step in patch.path:
            node = node[step] if step == "items" else node["properties"][step]
        node.update(patch.extra)
        if patch.rules:
            node["x-kubernetes-validations"] = [
                *node.get("x-kubernetes-validations", ()),
                *(
                    {"rule": rule, "message": message, **({"fieldPath": path} if path else {})}
                    for rule, message, path in patch.rules
                ),
            ]
    return schema


def crd_manifest(definition: CrdDefinition) -> Schema:
    """The whole CustomResourceDefinition object for one resource."""
    spec_schema = _patched(model_schema(definition.spec_model), definition.patches)
    status_schema: Schema = (
        model_schema(definition.status_model)
        if definition.status_model
        else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )
    root: Schema = {
        "type": "object",
        "description": definition.description or spec_schema.get("description", ""),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if definition.name_rule is not None:
        root["x-kubernetes-validations"] = [definition.name_rule.cel()]
    subresources: Schema = {"status": {}}
    if definition.scale:
        scale: Schema = {
            "specReplicasPath": definition.scale.spec_replicas_path,
            "statusReplicasPath": definition.scale.status_replicas_path,
        }
        if definition.scale.label_selector_path:
            scale["labelSelectorPath"] = definition.scale.label_selector_path
        subresources["scale"] = scale
    columns = [
        {
            "name": c.name,
            "type": c.type,
            "jsonPath": c.json_path,
            **({"description": c.description} if c.description else {}),
            **({"priority": c.priority} if c.priority else {}),
        }
        for c in definition.printer_columns
    ]
    singular = definition.kind.lower()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": definition.name},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": definition.kind,
                "listKind": f"{definition.kind}List",
                "plural": definition.plural,
                "singular": singular,
                "shortNames": list(definition.short_names),
                "categories": list(definition.categories),
            },
            "scope": "Namespaced" if definition.namespaced else "Cluster",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": subresources,
                    "additionalPrinterColumns": [
                        *columns,
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }
