"""Resource models: the single source of truth for weir's CRDs and files.

Pydantic models here describe what users write (InferenceDeployment,
CapacityPool, HostedEndpoint) and the data weir reads (engine profiles). They
depend on nothing else in weir, so every layer may import them.
"""

from weir.api._base import Resource, SpecError, describe_validation_error
from weir.api.deployment import (
    ControlSettings,
    HostedBurst,
    InferenceDeploymentSpec,
    ModelSpec,
    PoolBinding,
    WeightsSecretRef,
)
from weir.api.hosted import HostedEndpointSpec, HostedLatency, SecretKeyRef
from weir.api.pool import CapacityPoolSpec, CapacityType, Toleration
from weir.api.profile import EngineProfile, ProfileError, ProfilePoint, load_profile, load_profiles
from weir.api.slo import SLO, CostTargets

__all__ = [
    "SLO",
    "CapacityPoolSpec",
    "CapacityType",
    "ControlSettings",
    "CostTargets",
    "EngineProfile",
    "HostedBurst",
    "HostedEndpointSpec",
    "HostedLatency",
    "InferenceDeploymentSpec",
    "ModelSpec",
    "PoolBinding",
    "ProfileError",
    "ProfilePoint",
    "Resource",
    "SecretKeyRef",
    "SpecError",
    "Toleration",
    "WeightsSecretRef",
    "describe_validation_error",
    "load_profile",
    "load_profiles",
]
