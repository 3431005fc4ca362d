"""Capacity model: what one replica can take while meeting the SLO.

An engine with continuous batching and chunked prefill shares each GPU
between prompt processing and decode steps. With `rho` the fraction of GPU
time spent on prefill (arrival rate x prompt tokens x seconds per prompt
token), a decode step of a batch of `n` requests with mean context `ctx`
lasts `a + b*n + c*n*ctx`, and the inter-token latency seen by a request is
that step divided by `1 - rho`. Time to first token is a fixed overhead plus
the request's own prefill plus the wait behind other prefills. Six numbers
per profile, fitted to its points by least squares; the fit reproduces the
published SLO curve and stays within ~20% of the saturation tables (see
`engines/profiles/*.yaml` sources). The simulator's engine has physics of
its own (`weir.sim.engine`), so a plan is judged against a truth it did not
write.

`max_rate` is asked once per pool and window with a mix that drifts a little
every window; it answers for the mix rounded up onto a 2% grid, so the answer
is cached across windows and never optimistic (longer prompts and outputs only
lower the rate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from weir.api.profile import EngineProfile
from weir.api.slo import SLO

DEFAULT_CHUNK_TOKENS = 2048
DEFAULT_MAX_BATCH = 256
_P_GRID = np.logspace(-6.5, -2.5, 81)
_OVERDISPERSION = 2.75
_OUTPUT_LOG_SIGMA = 0.9
_RUN_ERROR_BUDGET = 0.5
_GRID_STEP = math.log(1.02)  # the mix is rounded up to 2% before its capacity is computed


@dataclass(frozen=True)
class EngineParams:
    """The fitted mechanics of one replica (seconds unless named otherwise)."""

    step_base_s: float
    step_per_seq_s: float
    step_per_seq_ktok_s: float
    prefill_s_per_token: float
    ttft_base_s: float
    queue_factor: float
    itl_p95_ratio: float
    max_batch: int
    kv_cache_tokens: int
    chunk_tokens: int

    def step_s(self, batch: float, mean_context: float) -> float:
        """Duration of one decode step with `batch` running requests."""
        return (
            self.step_base_s
            + self.step_per_seq_s * batch
            + self.step_per_seq_ktok_s * batch * mean_context / 1000.0
        )


@dataclass(frozen=True)
class Workload:
    """The request mix one replica sees; all token counts are per request."""

    mean_input_tokens: float
    mean_output_tokens: float
    prefill_tokens_at_percentile: float
    mean_prefill_tokens: float | None = None
    prefill_tokens_second_moment: float | None = None

    def __post_init__(self) -> None:
        for name in ("mean_input_tokens", "mean_output_tokens", "prefill_tokens_at_percentile"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 1:
                raise ValueError(f"Workload.{name} must be a finite number >= 1, got {value}")
        prefill = self.mean_prefill_tokens
        if prefill is not None and not (math.isfinite(prefill) and prefill >= 0):
            raise ValueError(f"Workload.mean_prefill_tokens must be finite and >= 0, got {prefill}")

    @property
    def prefill_tokens(self) -> float:
        """Mean prompt tokens that need prefill (the rest hit the prefix cache)."""
        return (
            self.mean_input_tokens if self.mean_prefill_tokens is None else self.mean_prefill_tokens
        )

    @property
    def prefill_residual_tokens(self) -> float:
        """E[prefill^2] / E[prefill]: the prompt a newcomer waits behind (Pollaczek-Khinchine)."""
        mean = max(self.prefill_tokens, 1.0)
        second = self.prefill_tokens_second_moment
        return mean if second is None else max(second / mean, mean)

    @property
    def mean_context(self) -> float:
        """Mean KV context of a running request: its prompt and half its output."""
        return self.mean_input_tokens + self.mean_output_tokens / 2


@dataclass(frozen=True)
class Prediction:
    """Predicted steady state of one replica at a given arrival rate."""

    rate_rps: float
    concurrency: float
    prefill_utilisation: float
    ttft_mean_s: float
    ttft_at_percentile_s: float
    itl_mean_s: float
    itl_at_percentile_s: float
    stable: bool
    run_late_token_share: float = 0.0


@dataclass(frozen=True)
class ReplicaCapacity:
    """The most one replica takes at the SLO, for one workload."""

    rate_rps: float
    concurrency_limit: int
    output_tokens_per_s: float


class CapacityModel:
    """Predictions for one engine profile (see the module docstring)."""

    def __init__(self, params: EngineParams) -> None:
        self.params = params

    def predict(
        self,
        workload: Workload,
        rate_rps: float,
        percentile: float = 95.0,
        slo_itl: float | None = None,
    ) -> Prediction:
        """Steady state at `rate_rps` requests/s (open loop, Poisson-like arrivals);
        with `slo_itl`, also the share of tokens lost to runs of prefill chunks."""
        p = self.params
        k_mean = workload.prefill_tokens * p.prefill_s_per_token
        rho = rate_rps * k_mean
        out = workload.mean_output_tokens
        if rho >= 1.0:
            return Prediction(
                rate_rps, math.inf, rho, math.inf, math.inf, math.inf, math.inf, False
            )
        residual = workload.prefill_residual_tokens * p.prefill_s_per_token
        wait = p.queue_factor * rho / (1.0 - rho) * residual
        chunking = 1.0 + p.step_base_s / (p.chunk_tokens * p.prefill_s_per_token)
        ttft = p.ttft_base_s + k_mean * chunking + wait
        per_seq = p.step_per_seq_s + p.step_per_seq_ktok_s * workload.mean_context / 1000.0
        decode_tokens = max(out - 1.0, 0.0)
        denominator = 1.0 - rate_rps * decode_tokens * per_seq / (1.0 - rho)
        if denominator <= 0.0:
            return Prediction(rate_rps, math.inf, rho, ttft, math.inf, math.inf, math.inf, False)
        concurrency = (
            rate_rps * ttft + rate_rps * decode_tokens * p.step_base_s / (1.0 - rho)
        ) / denominator
        itl = p.step_s(concurrency, workload.mean_context) / (1.0 - rho)
        tail = -math.log(max(1.0 - percentile / 100.0, 1e-9))
        ttft_pct = (
            p.ttft_base_s
            + workload.prefill_tokens_at_percentile * p.prefill_s_per_token
            + wait * tail
        )
        itl_pct = max(
            itl * p.itl_p95_ratio, itl + self._itl_spread(workload, rate_rps, itl, percentile)
        )
        stable = (
            concurrency <= p.max_batch and concurrency * workload.mean_context <= p.kv_cache_tokens
        )
        late = self._run_late_tokens(workload, rate_rps, concurrency, slo_itl) if slo_itl else 0.0
        return Prediction(rate_rps, concurrency, rho, ttft, ttft_pct, itl, itl_pct, stable, late)

    def _run_late_tokens(
        self, workload: Workload, rate_rps: float, concurrency: float, target: float
    ) -> float:
        """Share of generated tokens whose request sat inside a run of prefill-chunk steps.

        Chunk steps come in runs: a prompt of several chunks, then the prompts
        queued behind it (a busy period of the prefill queue, mean length
        chunks / (1 - a) with `a` the share of time with a chunk in the step).
        A request with n decode steps misses the ITL target when a run covers
        more than `x*n` of them, x the share of chunk steps its ITL can absorb;
        with runs of exponential length that happens with probability
        a * exp(-x * n / run). Output lengths log-normal around the mix's mean.
        """
        p = self.params
        step = p.step_s(concurrency, workload.mean_context)
        chunk_s = p.chunk_tokens * p.prefill_s_per_token
        if step >= target:
            return 1.0
        active = min(0.999, rate_rps * workload.prefill_tokens * (step + chunk_s) / p.chunk_tokens)
        chunks = max(1.0, workload.prefill_residual_tokens / p.chunk_tokens)
        run = chunks / (1.0 - active)
        absorb = (target - step) / chunk_s
        late = 0.0
        for weight, length in _output_nodes(workload.mean_output_tokens):
            steps = max(length - 1.0, 1.0)
            late += weight * length * active * math.exp(-absorb * steps / run)
        return min(1.0, late / workload.mean_output_tokens)

    def _itl_spread(
        self, workload: Workload, rate_rps: float, itl: float, percentile: float
    ) -> float:
        """Tail of a request's mean ITL: how many of its steps carried a prompt chunk.

        A fraction f of decode steps carries a prefill chunk (each adding
        chunk * prefill_s_per_token); over a request's (output - 1) steps the
        count is binomial, over-dispersed by bursty arrivals and the spread of
        output lengths (factor 2.75, calibrated on generated steady workloads
        against the simulated engine, not on the shared traces).
        """
        p = self.params
        steps = max(workload.mean_output_tokens - 1.0, 1.0)
        chunk_s = p.chunk_tokens * p.prefill_s_per_token
        f = min(1.0, rate_rps * workload.prefill_tokens / p.chunk_tokens * itl)
        z = NormalDist().inv_cdf(min(percentile / 100.0, 0.9999))
        return z * _OVERDISPERSION * chunk_s * math.sqrt(f * (1.0 - f) / steps)

    def saturated(self, workload: Workload, concurrency: float) -> Prediction:
        """A replica kept at `concurrency` in flight (a closed-loop benchmark, or full spill)."""
        ceiling = 1.0 / (max(workload.prefill_tokens, 1.0) * self.params.prefill_s_per_token)
        low, high = 0.0, ceiling
        for _ in range(40):  # 2^-40 of the ceiling
            mid = (low + high) / 2
            pred = self.predict(workload, mid)
            if math.isfinite(pred.concurrency) and pred.concurrency < concurrency:
                low = mid
            else:
                high = mid
        return self.predict(workload, low)

    def meets(self, workload: Workload, rate_rps: float, slo: SLO) -> bool:
        """Whether one replica at this rate meets both SLO targets at the SLO percentile."""
        pred = self.predict(workload, rate_rps, slo.percentile, slo.itl_seconds)
        return (
            pred.stable
            and pred.ttft_at_percentile_s <= slo.ttft_seconds
            and pred.itl_at_percentile_s <= slo.itl_seconds
            and pred.run_late_token_share <= (1.0 - slo.useful_token_target) * _RUN_ERROR_BUDGET
        )

    def max_rate(self, workload: Workload, slo: SLO) -> ReplicaCapacity:
        """The largest arrival rate one replica takes at the SLO (0 when none), for the
        workload rounded up onto the 2% grid (see the module docstring)."""
        return _max_rate_cached(self, on_grid(workload), slo)

    def closed_loop(
        self, concurrency: float, input_tokens: float, output_tokens: float
    ) -> Prediction:
        """Prediction for a benchmark run at fixed concurrency and one request shape."""
        return self.saturated(Workload(input_tokens, output_tokens, input_tokens), concurrency)

    def __hash__(self) -> int:
        return hash(self.params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CapacityModel) and other.params == self.params


@lru_cache(maxsize=16)
def _output_nodes(mean_output: float) -> tuple[tuple[float, float], ...]:
    """Gauss-Hermite nodes of a log-normal output length with this mean: (weight, length)."""
    nodes, weights = np.polynomial.hermite.hermgauss(8)
    s = _OUTPUT_LOG_SIGMA
    return tuple(
        (
            float(w / math.sqrt(math.pi)),
            float(mean_output * math.exp(s * math.sqrt(2) * x - s * s / 2)),
        )
        for x, w in zip(nodes, weights, strict=True)
    )


def _up(value: float) -> float:
    """`value` rounded up to the next point of the 2% log grid (exact points stay)."""
    if value <= 0:
        return value
    steps = math.ceil(math.log(value) / _GRID_STEP - 1e-9)
    return math.exp(steps * _GRID_STEP)


def on_grid(workload: Workload) -> Workload:
    """The workload with every token count rounded up onto the 2% grid."""
    prefill = workload.mean_prefill_tokens
    second = workload.prefill_tokens_second_moment
    return Workload(
        _up(workload.mean_input_tokens),
        _up(workload.mean_output_tokens),
        _up(workload.prefill_tokens_at_percentile),
        None if prefill is None else _up(prefill),
        None if second is None else _up(second),
    )


@lru_cache(maxsize=4096)
def _max_rate_cached(model: CapacityModel, workload: Workload, slo: SLO) -> ReplicaCapacity:
    """Open-loop rate at the SLO, and the in-flight limit that keeps a full replica in SLO."""
    ceiling = 1.0 / (max(workload.prefill_tokens, 1.0) * model.params.prefill_s_per_token)
    if not model.meets(workload, ceiling * 1e-6, slo):
        return ReplicaCapacity(0.0, 0, 0.0)
    low, high = 0.0, ceiling
    for _ in range(32):  # 2^-32 of the ceiling: far below any rate's meaning
        mid = (low + high) / 2
        if model.meets(workload, mid, slo):
            low = mid
        else:
            high = mid
    p = model.params
    top = int(min(p.max_batch, p.kv_cache_tokens // workload.mean_context))
    lo_n, hi_n = 1, max(top, 1)
    while lo_n < hi_n:
        mid_n = (lo_n + hi_n + 1) // 2
        if model.meets(workload, model.saturated(workload, mid_n).rate_rps, slo):
            lo_n = mid_n
        else:
            hi_n = mid_n - 1
    rate = min(low, model.saturated(workload, lo_n).rate_rps)
    return ReplicaCapacity(rate, lo_n, rate * workload.mean_output_tokens)


def _fit_for_p(
    profile: EngineProfile, p: float
) -> tuple[float, tuple[float, float, float], tuple[float, float]]:
    rows = profile.points
    lam = np.array([pt.output_tokens_per_s / pt.output_tokens for pt in rows])
    n = np.array([float(pt.concurrency) for pt in rows])
    inp = np.array([float(pt.input_tokens) for pt in rows])
    ctx = inp + np.array([pt.output_tokens / 2 for pt in rows])
    itl = np.array([pt.itl_p50_s for pt in rows])
    ttft = np.array([pt.ttft_p50_s for pt in rows])
    k = inp * p
    rho = lam * k
    if np.any(rho >= 0.97):
        return math.inf, (0.0, 0.0, 0.0), (0.0, 0.0)
    step = itl * (1 - rho)
    design = np.column_stack([np.ones_like(n), n, n * ctx / 1000.0])
    step_coef = _nonneg_lstsq(design, step)
    wait_x = rho / (1 - rho) * k
    ttft_coef = _nonneg_lstsq(np.column_stack([np.ones_like(n), wait_x]), ttft - k)
    pred_step = design @ np.array(step_coef)
    pred_ttft = ttft_coef[0] + k + ttft_coef[1] * wait_x
    err = float(np.sum(((pred_step - step) / step) ** 2) + np.sum(((pred_ttft - ttft) / ttft) ** 2))
    return err, (step_coef[0], step_coef[1], step_coef[2]), (ttft_coef[0], ttft_coef[1])


def _nonneg_lstsq(design: np.ndarray, target: np.ndarray) -> list[float]:
    """Least squares with coefficients clamped at zero (drop and refit)."""
    active = list(range(design.shape[1]))
    coef = np.zeros(design.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(design[:, active], target, rcond=None)
        if np.all(sol >= 0):
            coef[active] = sol
            break
        active = [col for col, value in zip(active, sol, strict=True) if value >= 0]
    return [float(x) for x in coef]


def fit_params(profile: EngineProfile) -> EngineParams:
    """Fit the six mechanics parameters to a profile's points."""
    best = min((_fit_for_p(profile, float(p)), float(p)) for p in _P_GRID)
    (err, step, ttft), p = best
    if not math.isfinite(err):
        raise ValueError(f"profile {profile.model}/{profile.gpu}: no prefill rate fits the points")
    itl_ratio = float(np.median([pt.itl_p95_s / pt.itl_p50_s for pt in profile.points]))
    max_batch = profile.max_concurrency or DEFAULT_MAX_BATCH
    return EngineParams(
        step_base_s=max(step[0], 1e-4),
        step_per_seq_s=step[1],
        step_per_seq_ktok_s=step[2],
        prefill_s_per_token=p,
        ttft_base_s=ttft[0],
        queue_factor=ttft[1],
        itl_p95_ratio=itl_ratio,
        max_batch=max_batch,
        kv_cache_tokens=profile.kv_cache_tokens or 10**9,
        chunk_tokens=profile.prefill_chunk_tokens or DEFAULT_CHUNK_TOKENS,
    )


@lru_cache(maxsize=64)
def model_for(profile: EngineProfile) -> CapacityModel:
    """The capacity model of a profile (fitted once per profile value)."""
    return CapacityModel(fit_params(profile))


def at_speed(params: EngineParams, speed: float) -> EngineParams:
    """The mechanics of an engine `speed` times as fast as the profile's (every time / speed)."""
    return replace(
        params,
        step_base_s=params.step_base_s / speed,
        step_per_seq_s=params.step_per_seq_s / speed,
        step_per_seq_ktok_s=params.step_per_seq_ktok_s / speed,
        prefill_s_per_token=params.prefill_s_per_token / speed,
        ttft_base_s=params.ttft_base_s / speed,
    )


def model_at_speed(profile: EngineProfile, speed: float) -> CapacityModel:
    """The capacity model of a profile's engine running at `speed` x (learned online)."""
    key = round(max(0.05, speed), 2)  # a bounded cache: a percent is below the evidence's noise
    return model_for(profile) if key == 1.0 else _model_at(profile, key)


@lru_cache(maxsize=256)
def _model_at(profile: EngineProfile, speed: float) -> CapacityModel:
    return CapacityModel(at_speed(model_for(profile).params, speed))


@dataclass(frozen=True)
class LeaveOneOut:
    """Mean absolute relative error when each point is predicted from the others."""

    ttft_error: float
    itl_error: float
    throughput_error: float
    points: int


def leave_one_out(profile: EngineProfile, measured_only: bool = False) -> LeaveOneOut:
    """Refit without each point in turn and predict it (closed loop at its concurrency)."""
    errors: list[tuple[float, float, float]] = []
    for index, point in enumerate(profile.points):
        if measured_only and point.derived:
            continue
        rest = profile.points[:index] + profile.points[index + 1 :]
        if not rest:
            continue
        model = CapacityModel(fit_params(profile.model_copy(update={"points": rest})))
        pred = model.closed_loop(point.concurrency, point.input_tokens, point.output_tokens)
        tput = pred.rate_rps * point.output_tokens
        errors.append(
            (
                abs(pred.ttft_mean_s - point.ttft_p50_s) / point.ttft_p50_s,
                abs(pred.itl_mean_s - point.itl_p50_s) / point.itl_p50_s,
                abs(tput - point.output_tokens_per_s) / point.output_tokens_per_s,
            )
        )
    if not errors:
        return LeaveOneOut(0.0, 0.0, 0.0, 0)
    arr = np.array(errors)
    return LeaveOneOut(
        float(arr[:, 0].mean()), float(arr[:, 1].mean()), float(arr[:, 2].mean()), len(errors)
    )
