"""The three custom resources weir serves, as CRD definitions.

Names, scope, printer columns and subresources live beside the models so
that `weir crds` (which writes crds/) and the tests read one table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from weir.api._base import SpecError, describe_validation_error
from weir.api._types import DNS1035_LABEL_PATTERN, DNS_LABEL_PATTERN, HTTP_URL_PATTERN
from weir.api.crd import CrdDefinition, NameRule, PrinterColumn, ScaleSubresource, SchemaPatch
from weir.api.deployment import InferenceDeploymentSpec
from weir.api.hosted import HostedEndpointSpec
from weir.api.pool import CapacityPoolSpec
from weir.api.status import InferenceDeploymentStatus

# The router Service carries the deployment's name, and every child its label.
DEPLOYMENT_NAME = NameRule(
    DNS1035_LABEL_PATTERN,
    63,
    "it names the router Service and is the weir.dev/deployment label of every child",
)
# A pool's name is the weir.dev/pool label value and part of its engines' names.
POOL_NAME = NameRule(DNS_LABEL_PATTERN, 63, "it is the weir.dev/pool label of its engines")
ENDPOINT_NAME = NameRule(
    DNS_LABEL_PATTERN, 63, "deployments refer to it by hosted.endpoint, a DNS label"
)

INFERENCE_DEPLOYMENT = CrdDefinition(
    kind="InferenceDeployment",
    plural="inferencedeployments",
    short_names=("idep", "infdep"),
    namespaced=True,
    spec_model=InferenceDeploymentSpec,
    status_model=InferenceDeploymentStatus,
    description="An LLM deployment weir runs at the lowest $ per useful token that meets its SLO.",
    scale=ScaleSubresource(".spec.replicas", ".status.replicas", ".status.selector"),
    name_rule=DEPLOYMENT_NAME,
    patches=(
        SchemaPatch(
            ("pools",),
            extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["pool"],
            },
        ),
        SchemaPatch(
            ("pools", "items"),
            rules=(
                (
                    "self.minReplicas <= self.maxReplicas",
                    "minReplicas must be <= maxReplicas",
                    ".minReplicas",
                ),
            ),
        ),
        SchemaPatch(
            (),
            rules=(
                (
                    "!has(self.hosted)"
                    " || self.hosted.maxDollarsPerHour <= self.cost.budgetDollarsPerHour",
                    "hosted.maxDollarsPerHour must be <= cost.budgetDollarsPerHour",
                    ".hosted.maxDollarsPerHour",
                ),
                (
                    "self.pools.exists(p, p.maxReplicas > 0)"
                    " || (has(self.hosted) && self.hosted.maxShare > 0.0)",
                    "pools: every pool has maxReplicas 0 and no hosted endpoint may take traffic",
                    ".pools",
                ),
            ),
        ),
        SchemaPatch(
            ("control",),
            rules=(
                (
                    "self.staleAfterSeconds >= self.periodSeconds",
                    "staleAfterSeconds must be >= periodSeconds",
                    ".staleAfterSeconds",
                ),
            ),
        ),
    ),
    printer_columns=(
        PrinterColumn("Ready", ".status.readyReplicas", "integer", "Ready engine replicas."),
        PrinterColumn("On-Demand", ".status.onDemandReplicas", "integer", "On-demand replicas."),
        PrinterColumn("Spot", ".status.spotReplicas", "integer", "Spot replicas."),
        PrinterColumn("Hosted", ".status.hostedShare", "number", "Share of requests sent hosted."),
        PrinterColumn(
            "$/M-Useful",
            ".status.dollarsPerMillionUsefulTokens",
            "number",
            "US dollars per million useful tokens.",
        ),
        PrinterColumn("Useful", ".status.usefulTokenFraction", "number", "Useful token fraction."),
        PrinterColumn("Mode", ".spec.control.mode", "string", "enforce or recommend.", priority=1),
    ),
)

CAPACITY_POOL = CrdDefinition(
    kind="CapacityPool",
    plural="capacitypools",
    short_names=("cpool",),
    namespaced=False,
    spec_model=CapacityPoolSpec,
    description="A GPU node pool weir may place engine replicas on.",
    name_rule=POOL_NAME,
    patches=(
        SchemaPatch(
            (),
            rules=(
                (
                    "self.capacityType == 'spot' || self.interruptionsPerInstanceMonth == 0.0",
                    "interruptionsPerInstanceMonth must be 0 for an on-demand pool",
                    ".interruptionsPerInstanceMonth",
                ),
                (
                    "!has(self.maxGpus) || self.maxGpus >= self.gpusPerReplica",
                    "maxGpus must be at least gpusPerReplica",
                    ".maxGpus",
                ),
            ),
        ),
        SchemaPatch(
            ("tolerations", "items"),
            rules=(
                (
                    "self.operator != 'Exists' || self.value == ''",
                    "value must be empty when operator is Exists (it matches any value)",
                    ".value",
                ),
            ),
        ),
    ),
    printer_columns=(
        PrinterColumn("GPU", ".spec.gpuType"),
        PrinterColumn("GPUs/Replica", ".spec.gpusPerReplica", "integer"),
        PrinterColumn("Capacity", ".spec.capacityType"),
        PrinterColumn("$/GPU-h", ".spec.dollarsPerGpuHour", "number"),
        PrinterColumn("Cold-Start-s", ".spec.coldStartSeconds", "number"),
    ),
)

HOSTED_ENDPOINT = CrdDefinition(
    kind="HostedEndpoint",
    plural="hostedendpoints",
    short_names=("hosted",),
    namespaced=True,
    spec_model=HostedEndpointSpec,
    description="An OpenAI-compatible hosted API weir may spill traffic to.",
    name_rule=ENDPOINT_NAME,
    patches=(
        SchemaPatch(("baseUrl",), extra={"pattern": HTTP_URL_PATTERN}),
        SchemaPatch(
            (),
            rules=(
                (
                    "self.dollarsPerMillionCachedInputTokens <= self.dollarsPerMillionInputTokens",
                    "dollarsPerMillionCachedInputTokens must not exceed"
                    " dollarsPerMillionInputTokens",
                    ".dollarsPerMillionCachedInputTokens",
                ),
            ),
        ),
        SchemaPatch(
            ("latency",),
            rules=(
                (
                    "self.ttftP95Seconds >= self.ttftP50Seconds",
                    "ttftP95Seconds must be >= ttftP50Seconds",
                    ".ttftP95Seconds",
                ),
            ),
        ),
    ),
    printer_columns=(
        PrinterColumn("URL", ".spec.baseUrl"),
        PrinterColumn("Model", ".spec.model"),
        PrinterColumn("$/M-In", ".spec.dollarsPerMillionInputTokens", "number"),
        PrinterColumn("$/M-Out", ".spec.dollarsPerMillionOutputTokens", "number"),
    ),
)

DEFINITIONS = (INFERENCE_DEPLOYMENT, CAPACITY_POOL, HOSTED_ENDPOINT)


def definition_of(kind: str) -> CrdDefinition:
    """The definition of a weir kind; SpecError naming `kind` when it is not one."""
    for definition in DEFINITIONS:
        if definition.kind == kind:
            return definition
    raise SpecError(f"kind: {kind!r} is not one of {', '.join(d.kind for d in DEFINITIONS)}")


def validate_resource(body: Mapping[str, Any]) -> BaseModel:
    """Check a whole object as the API server would (name and spec); return its spec.

    The spec models alone cannot see `metadata.name`, yet weir derives Service
    names and label values from it; this is the one place both are checked, and
    every error is a SpecError naming the field by its wire path.
    """
    definition = definition_of(str(body.get("kind")))
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    if definition.name_rule is not None:
        problem = definition.name_rule.problem(name)
        if problem is not None:
            raise SpecError(problem)
    try:
        return definition.spec_model.model_validate(body.get("spec"))
    except ValidationError as exc:
        raise SpecError(describe_validation_error(f"{definition.kind} {name} spec", exc)) from exc
