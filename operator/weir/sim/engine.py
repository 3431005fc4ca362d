"""The simulated engine's own physics: a roofline step model from hardware facts.

The simulator must not grade the planner with the planner's assumptions, so
a replica's step time is not `weir.planner.capacity`'s fitted line (an
import-linter contract checks that this module and the replica never import
it). Here one engine step (one token for every running request, plus up to a
token budget of prompt tokens with chunked prefill) lasts

    overhead + per_seq * n + max(bytes moved / bandwidth, flops / peak)

with the bytes (weights once per step, every running request's KV cache)
and the flops (2 x parameters per token, attention over each token's
context) taken from the model's architecture and the GPU's data sheet.
Prompt chunks make a step compute-bound, which is the interference between
prefill and decode; the KV cache bounds the running requests' contexts. Five
efficiency and overhead numbers are fitted to the profile's *measured*
points by replaying each point in this engine (`weir.sim.calibrate`);
profiles without measured points run on the priors below. Step times jitter
log-normally (`STEP_JITTER_SIGMA`), and each replica draws its own speed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import NormalDist

from weir.api.profile import EngineProfile

STEP_JITTER_SIGMA = 0.05
"""Log-sd of one step's duration around its roofline value: CUDA-graph replay
keeps steps within a few percent; scheduling, sampling and detokenisation on
the host add the rest. Not measured by any profile (their p95/p50 ratios are
assumed), so a stated constant."""

REPLICA_SPEED_SIGMA = 0.03
"""Log-sd of one replica's speed against its profile (GPU bins, clocks, thermals)."""

_NORMAL = NormalDist()


@dataclass(frozen=True)
class ModelFacts:
    """Architecture of a model family (public model cards)."""

    parameters: float
    layers: int
    kv_heads: int
    head_dim: int
    hidden: int


@dataclass(frozen=True)
class GpuFacts:
    """Data-sheet numbers of one GPU: HBM bandwidth (B/s), dense FP8 and BF16 flop/s."""

    bandwidth: float
    fp8_flops: float
    bf16_flops: float


_MODELS: tuple[tuple[str, ModelFacts], ...] = (
    ("llama-3.1-8b", ModelFacts(8.03e9, 32, 8, 128, 4096)),
    ("llama-3.1-70b", ModelFacts(70.6e9, 80, 8, 128, 8192)),
    ("llama-3.3-70b", ModelFacts(70.6e9, 80, 8, 128, 8192)),
)
_GPUS: tuple[tuple[str, GpuFacts], ...] = (
    ("h200", GpuFacts(4.8e12, 1.979e15, 0.989e15)),
    ("h100", GpuFacts(3.35e12, 1.979e15, 0.989e15)),
    ("a100", GpuFacts(2.0e12, 0.624e15, 0.312e15)),
    ("l40s", GpuFacts(0.864e12, 0.733e15, 0.362e15)),
)


@dataclass(frozen=True)
class Calibration:
    """The fitted numbers: efficiencies of the roofline and host-side overheads."""

    memory_efficiency: float = 0.75
    compute_efficiency: float = 0.5
    step_overhead_s: float = 0.0015
    per_seq_s: float = 2e-5
    first_token_overhead_s: float = 0.005


PRIOR = Calibration()
"""Typical values (decode reaches ~75% of HBM bandwidth, prefill ~50% of dense
peak, a millisecond or two of host work per step): what a profile without
measured points runs on."""


@dataclass(frozen=True)
class EngineSpec:
    """Everything one simulated replica needs to time its steps."""

    weight_bytes: float
    kv_bytes_per_token: float
    flops_per_token: float
    attention_flops_per_token_ctx: float
    bandwidth: float
    peak_flops: float
    calibration: Calibration
    max_batch: int
    kv_cache_tokens: int
    token_budget: int

    def step_s(self, decoding: int, decode_ctx: float, prefill: float, prefill_pos: float) -> float:
        """One step: `decoding` requests holding `decode_ctx` KV tokens, `prefill` prompt
        tokens whose mean position in their prompt is `prefill_pos`."""
        c = self.calibration
        moved = self.weight_bytes + self.kv_bytes_per_token * (decode_ctx + prefill_pos)
        flops = self.flops_per_token * (decoding + prefill) + self.attention_flops_per_token_ctx * (
            decode_ctx + prefill * prefill_pos
        )
        roof = max(
            moved / (self.bandwidth * c.memory_efficiency),
            flops / (self.peak_flops * c.compute_efficiency),
        )
        return c.step_overhead_s + c.per_seq_s * decoding + roof

    def with_calibration(self, calibration: Calibration) -> EngineSpec:
        """The same hardware with other fitted numbers."""
        return EngineSpec(
            self.weight_bytes,
            self.kv_bytes_per_token,
            self.flops_per_token,
            self.attention_flops_per_token_ctx,
            self.bandwidth,
            self.peak_flops,
            calibration,
            self.max_batch,
            self.kv_cache_tokens,
            self.token_budget,
        )


def late_step_share(step_s: float, bound_s: float) -> float:
    """Probability that a jittered step of nominal `step_s` lasts longer than `bound_s`."""
    if not math.isfinite(bound_s):
        return 0.0
    if step_s <= 0:
        return 0.0
    s = STEP_JITTER_SIGMA
    z = (math.log(bound_s / step_s) + s * s / 2) / s
    return 1.0 - _NORMAL.cdf(z)


def _model_facts(name: str) -> ModelFacts:
    key = name.lower()
    for stem, facts in _MODELS:
        if stem in key:
            return facts
    match = re.search(r"(\d+(?:\.\d+)?)b\b", key)
    if not match:
        raise ValueError(
            f"engine: no architecture facts for model {name!r}: add it to weir.sim.engine._MODELS "
            "or name its size in billions (e.g. '-8B-')"
        )
    billions = float(match.group(1))
    # a Llama-shaped guess: hidden grows with the square root of the size
    hidden = int(4096 * math.sqrt(billions / 8.0))
    return ModelFacts(billions * 1e9, max(16, int(32 * (billions / 8.0) ** 0.3)), 8, 128, hidden)


def _gpu_facts(name: str) -> GpuFacts:
    """The GPU's data sheet; an unknown GPU runs on H100 numbers, which the fitted
    efficiencies then absorb when the profile has measured points."""
    key = name.lower()
    for stem, facts in _GPUS:
        if stem in key:
            return facts
    return dict(_GPUS)["h100"]


def _bytes_per_value(precision: str) -> float:
    p = precision.lower()
    if "fp4" in p or "int4" in p:
        return 0.5
    if "fp8" in p or "int8" in p:
        return 1.0
    return 2.0


def hardware(profile: EngineProfile, calibration: Calibration = PRIOR) -> EngineSpec:
    """The roofline of one profile's (model, GPU, precision, TP) with given fitted numbers."""
    model = _model_facts(profile.model)
    gpu = _gpu_facts(profile.gpu)
    width = _bytes_per_value(profile.precision)
    tp = profile.tensor_parallel
    low_precision = width <= 1.0
    kv_width = 1.0 if low_precision else 2.0
    return EngineSpec(
        weight_bytes=model.parameters * width,
        kv_bytes_per_token=2.0 * model.layers * model.kv_heads * model.head_dim * kv_width,
        flops_per_token=2.0 * model.parameters,
        attention_flops_per_token_ctx=4.0 * model.layers * model.hidden,
        bandwidth=gpu.bandwidth * tp,
        peak_flops=(gpu.fp8_flops if low_precision else gpu.bf16_flops) * tp,
        calibration=calibration,
        max_batch=profile.max_concurrency or 256,
        kv_cache_tokens=profile.kv_cache_tokens or 10**9,
        token_budget=profile.prefill_chunk_tokens or 2048,
    )
