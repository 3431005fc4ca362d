"""Engine profiles: measured capacity curves of one model on one GPU setup.

The planner is only as good as the capacity curves it reads, and the emulated
engine replays the same curves, so both read this one schema from
`engines/profiles/*.yaml`. A point is what one replica delivered at a given
number of concurrent requests for a given input/output length.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from weir.api._base import load_yaml_model


class ProfileError(ValueError):
    """A profile file is missing, unreadable or does not match the schema."""


class ProfilePoint(BaseModel):
    """One measurement: a replica at a fixed concurrency and request shape."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    concurrency: int = Field(ge=1, description="Concurrent requests in the replica.")
    input_tokens: int = Field(ge=1, description="Prompt length of every request, tokens.")
    output_tokens: int = Field(ge=1, description="Generated length of every request, tokens.")
    ttft_p50_s: float = Field(gt=0, description="Median time to first token, seconds.")
    ttft_p95_s: float = Field(gt=0, description="95th percentile time to first token, seconds.")
    itl_p50_s: float = Field(gt=0, description="Median inter-token latency, seconds.")
    itl_p95_s: float = Field(gt=0, description="95th percentile inter-token latency, seconds.")
    output_tokens_per_s: float = Field(
        gt=0, description="Generated tokens per second, whole replica."
    )
    derived: bool = Field(
        default=False,
        description="True when the point is derived from a model, not measured; see `source`.",
    )

    @model_validator(mode="after")
    def _percentiles_ordered(self) -> ProfilePoint:
        if self.ttft_p95_s < self.ttft_p50_s:
            raise ValueError("ttft_p95_s must be >= ttft_p50_s")
        if self.itl_p95_s < self.itl_p50_s:
            raise ValueError("itl_p95_s must be >= itl_p50_s")
        return self


class EngineProfile(BaseModel):
    """Capacity curve of one (model, GPU, precision, tensor parallelism)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(
        min_length=1, description="Model name, e.g. meta-llama/Llama-3.3-70B-Instruct."
    )
    gpu: str = Field(min_length=1, description="GPU product, e.g. H100-SXM-80GB.")
    precision: str = Field(min_length=1, description="Weights precision, e.g. fp8, bf16.")
    tensor_parallel: int = Field(
        ge=1, le=64, description="GPUs per replica (tensor parallel size)."
    )
    source: str = Field(
        min_length=1, description="Where the numbers come from and how they were derived."
    )
    max_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Engine batch limit (max_batch_size); requests beyond it queue.",
    )
    kv_cache_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Tokens the KV cache holds per replica; running requests' contexts fit in it.",
    )
    prefill_chunk_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Prompt tokens per engine step with chunked prefill (max_num_tokens).",
    )
    points: tuple[ProfilePoint, ...] = Field(min_length=1, description="Measured points.")


def load_profile(path: Path) -> EngineProfile:
    """Read one profile file, with an error that names the file and the field."""
    return load_yaml_model(path, EngineProfile, "engine profile", ProfileError)


def load_profiles(directory: Path) -> dict[str, EngineProfile]:
    """All profiles in a folder, keyed by file stem."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise ProfileError(f"no engine profiles (*.yaml) in {directory}")
    return {f.stem: load_profile(f) for f in files}
