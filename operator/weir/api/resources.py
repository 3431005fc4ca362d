"""The three custom resources weir serves, as CRD definitions.

Names, scope, printer columns and subresources live beside the models so
that `weir crds` (which writes crds/) and the tests read one table.
"""

from __future__ import annotations

from weir.api.crd import CrdDefinition, PrinterColumn, ScaleSubresource, SchemaPatch
from weir.api.deployment import InferenceDeploymentSpec
from weir.api.hosted import HostedEndpointSpec
from weir.api.pool import CapacityPoolSpec
from weir.api.status import InferenceDeploymentStatus

INFERENCE_DEPLOYMENT = CrdDefinition(
    kind="InferenceDeployment",
    plural="inferencedeployments",
    short_names=("idep", "infdep"),
    namespaced=True,
    spec_model=InferenceDeploymentSpec,
    status_model=InferenceDeploymentStatus,
    description="An LLM deployment weir runs at the lowest $ per useful token that meets its SLO.",
    scale=ScaleSubresource(".spec.replicas", ".status.replicas", ".status.selector"),
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
    patches=(
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
