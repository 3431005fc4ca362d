"""Cold-start estimator: how long until a new replica serves, from the state of its caches.

The planner must look ahead one cold start, and a cold start ranges from
seconds to a quarter of an hour depending on what is already in place: a
provisioned node, the image on that node, the weights on a filled cache
volume. Default durations and bandwidths come from published measurements
(kaito #2325: A100 node provisioning 284 s + init 126 s, 5.6 GB image pulled
in 101 s, 51.75 GiB weights loaded in 62 s, 195 s compile/warm-up; vllm #19824:
torch.compile 70 s + CUDA graphs 60 s; TensorRT-LLM images 12-18.5 GB). They
are settings, not constants: measure your own and override them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from weir.engines.errors import SpecError

GB = 1e9
GIB = 2**30


class ColdStartSettings(BaseModel):
    """Durations (s) and bandwidths (bytes/s) of each cold-start phase."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_provisioning_s: float = Field(
        default=410.0, ge=0, description="New GPU node until Ready: 284 s + 126 s (kaito #2325)."
    )
    image_pull_bytes_per_s: float = Field(
        default=5.6 * GB / 101, gt=0, description="Registry pull: 5.6 GB in 101 s (kaito #2325)."
    )
    container_start_s: float = Field(
        default=74.0, ge=0, description="Framework bootstrap before loading (kaito #2325)."
    )
    weights_download_bytes_per_s: float = Field(
        default=0.2 * GB,
        gt=0,
        description="Hub download inside the pod, bytes/s (assumption: ~1.6 Gbit/s).",
    )
    weights_load_bytes_per_s: float = Field(
        default=51.75 * GIB / 62, gt=0, description="Load from a local volume (kaito #2325)."
    )
    warmup_s: float = Field(
        default=130.0, ge=0, description="Compile + CUDA graphs: 70 s + 60 s (vllm #19824)."
    )


class ReplicaStartState(BaseModel):
    """What is already in place for the replica about to start."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node_available: bool = Field(description="A Ready node with free GPUs exists.")
    image_cached: bool = Field(description="The engine image is on that node.")
    weights_cached: bool = Field(description="The cache volume for this key is filled.")
    image_bytes: float = Field(default=18.5 * GB, gt=0, description="Engine image size.")
    weights_bytes: float = Field(gt=0, description="Checkpoint size on disk.")


class ColdStartEstimate(BaseModel):
    """Seconds per phase and in total; `phases` explains the total."""

    model_config = ConfigDict(frozen=True)

    phases: tuple[tuple[str, float], ...]

    @property
    def total_s(self) -> float:
        return sum(seconds for _, seconds in self.phases)


def estimate_cold_start(
    state: ReplicaStartState, settings: ColdStartSettings | None = None
) -> ColdStartEstimate:
    """Time to ready of one replica: provisioning, pull, start, weights, warm-up."""
    s = settings or ColdStartSettings()
    if state.image_cached and not state.node_available:
        raise SpecError("an image cannot be cached on a node that does not exist yet")
    weights = (
        ("weights_load", state.weights_bytes / s.weights_load_bytes_per_s)
        if state.weights_cached
        else ("weights_download", state.weights_bytes / s.weights_download_bytes_per_s)
    )
    phases = (
        ("node_provisioning", 0.0 if state.node_available else s.node_provisioning_s),
        ("image_pull", 0.0 if state.image_cached else state.image_bytes / s.image_pull_bytes_per_s),
        ("container_start", s.container_start_s),
        weights,
        ("warmup", s.warmup_s),
    )
    return ColdStartEstimate(phases=phases)


def warm_and_cold(
    weights_bytes: float,
    image_bytes: float = 18.5 * GB,
    settings: ColdStartSettings | None = None,
) -> tuple[ColdStartEstimate, ColdStartEstimate]:
    """(warm, cold): node, image and weights all in place vs none of them."""
    warm = ReplicaStartState(
        node_available=True,
        image_cached=True,
        weights_cached=True,
        image_bytes=image_bytes,
        weights_bytes=weights_bytes,
    )
    cold = warm.model_copy(
        update={"node_available": False, "image_cached": False, "weights_cached": False}
    )
    return estimate_cold_start(warm, settings), estimate_cold_start(cold, settings)
