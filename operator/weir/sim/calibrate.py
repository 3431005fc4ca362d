"""Calibrating the simulated engine on a profile's measured points, and its error there.

A measured point is a closed-loop benchmark: `concurrency` clients, each
sending its next request (one input/output shape) as soon as the last one
finished. `replay_point` runs exactly that on one simulated replica and reads
the same three figures (median TTFT, median per-request ITL, output tokens
per second). `calibrate` fits the engine's five efficiency and overhead
numbers to the measured points by Nelder-Mead in log space, with a weak pull
towards the priors so that numbers the points cannot pin stay physical;
modelled (`derived`) points are never used: they come from the planner's
model, and fitting to them would grade the planner by its own assumptions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from weir.api.profile import EngineProfile, ProfilePoint
from weir.sim.engine import PRIOR, Calibration, EngineSpec, hardware
from weir.sim.replica import Job, Replica

_PRIOR_WEIGHT = 0.02
_ITERATIONS = 160


@dataclass(frozen=True)
class PointError:
    """One measured point against the simulated engine replaying it."""

    point: ProfilePoint
    ttft_s: float
    itl_s: float
    output_tokens_per_s: float

    @property
    def errors(self) -> tuple[float, float, float]:
        """Relative errors (simulated / measured - 1) of TTFT, ITL and throughput."""
        p = self.point
        return (
            self.ttft_s / p.ttft_p50_s - 1.0,
            self.itl_s / p.itl_p50_s - 1.0,
            self.output_tokens_per_s / p.output_tokens_per_s - 1.0,
        )


def replay_point(spec: EngineSpec, point: ProfilePoint) -> PointError:
    """Closed loop at the point's concurrency and shape on one replica."""
    replica = Replica(0, "calibration", spec, 0.0, 0.0)
    replica.state = "ready"
    c = point.concurrency
    total = 3 * c + 24
    issued = 0
    ttfts: list[float] = []
    itls: list[float] = []
    marks: list[tuple[float, int]] = []

    def send(at: float) -> None:
        nonlocal issued
        job = Job(issued, at, point.input_tokens, point.output_tokens, point.input_tokens, 0, True)
        issued += 1
        replica.add(job, at)

    for _ in range(c):
        send(0.0)
    finished = 0
    while finished < total:
        at = replica.next_event_s()
        if at is None:
            raise RuntimeError("calibration replica stalled")
        for job in replica.process(at):
            finished += 1
            if finished > c:
                ttfts.append(job.first_token_s - job.arrival_s)
                decode = at - job.prefill_done_s
                itls.append(decode / (job.output_tokens - 1) if job.output_tokens > 1 else 0.0)
                marks.append((at, job.output_tokens))
            send(at)
    span = marks[-1][0] - marks[0][0]
    tokens = sum(out for _, out in marks[1:])
    return PointError(point, float(np.median(ttfts)), float(np.median(itls)), tokens / span)


def measured_points(profile: EngineProfile) -> tuple[ProfilePoint, ...]:
    """The points a profile says were measured (`derived: false`)."""
    return tuple(p for p in profile.points if not p.derived)


def _from_vector(x: Sequence[float]) -> Calibration:
    values = [math.exp(v) for v in x]
    values[0] = min(values[0], 1.0)
    values[1] = min(values[1], 1.0)
    return Calibration(*values)


def _vector(c: Calibration) -> list[float]:
    return [math.log(getattr(c, f.name)) for f in fields(c)]


def _objective(base: EngineSpec, points: Sequence[ProfilePoint]) -> Callable[[list[float]], float]:
    prior = _vector(PRIOR)

    def loss(x: list[float]) -> float:
        spec = base.with_calibration(_from_vector(x))
        total = _PRIOR_WEIGHT * sum((a - b) ** 2 for a, b in zip(x, prior, strict=True))
        for point in points:
            for e in replay_point(spec, point).errors:
                total += math.log1p(e) ** 2 if e > -1 else 1e6
        return total

    return loss


def _nelder_mead(f: Callable[[list[float]], float], x0: list[float], step: float) -> list[float]:
    """A plain Nelder-Mead (no scipy in the product's dependencies)."""
    simplex = [list(x0)] + [
        [v + (step if i == j else 0.0) for j, v in enumerate(x0)] for i in range(len(x0))
    ]
    scores = [f(x) for x in simplex]
    for _ in range(_ITERATIONS):
        order = sorted(range(len(simplex)), key=lambda i: scores[i])
        simplex, scores = [simplex[i] for i in order], [scores[i] for i in order]
        centre = [sum(col) / (len(simplex) - 1) for col in zip(*simplex[:-1], strict=True)]
        worst = simplex[-1]
        reflected = [c + (c - w) for c, w in zip(centre, worst, strict=True)]
        r = f(reflected)
        if r < scores[0]:
            expanded = [c + 2 * (c - w) for c, w in zip(centre, worst, strict=True)]
            e = f(expanded)
            simplex[-1], scores[-1] = (expanded, e) if e < r else (reflected, r)
        elif r < scores[-2]:
            simplex[-1], scores[-1] = reflected, r
        else:
            contracted = [c + 0.5 * (w - c) for c, w in zip(centre, worst, strict=True)]
            k = f(contracted)
            if k < scores[-1]:
                simplex[-1], scores[-1] = contracted, k
            else:
                best = simplex[0]
                simplex = [best] + [
                    [b + 0.5 * (v - b) for b, v in zip(best, x, strict=True)] for x in simplex[1:]
                ]
                scores = [scores[0]] + [f(x) for x in simplex[1:]]
    return simplex[min(range(len(simplex)), key=lambda i: scores[i])]


@lru_cache(maxsize=32)
def engine_for(profile: EngineProfile) -> EngineSpec:
    """The simulated engine of a profile: its hardware, calibrated on its measured points."""
    base = hardware(profile)
    points = measured_points(profile)
    if not points:
        return base
    best = _nelder_mead(_objective(base, points), _vector(PRIOR), 0.3)
    return base.with_calibration(_from_vector(best))


def calibration_errors(profile: EngineProfile) -> list[PointError]:
    """The calibrated engine replaying each measured point (what `weir` reports as its error)."""
    spec = engine_for(profile)
    return [replay_point(spec, point) for point in measured_points(profile)]


def report(profiles: dict[str, EngineProfile]) -> str:
    """A text table of the calibrated engine against every measured point (for the record)."""
    lines = [
        "Simulated engine (weir.sim.engine) against the profiles' measured points.",
        "Each point replayed closed-loop on one simulated replica; error = simulated/measured - 1.",
        "",
        f"{'profile':34} {'conc':>4} {'in/out':>10} {'TTFT p50 s':>17} {'ITL p50 ms':>15} "
        f"{'tok/s':>15}  errors (TTFT, ITL, tok/s)",
    ]
    for stem, profile in sorted(profiles.items()):
        spec = engine_for(profile)
        c = spec.calibration
        lines.append(
            f"{stem}: {len(measured_points(profile))} measured, "
            f"{len(profile.points) - len(measured_points(profile))} modelled points; "
            f"memory eff {c.memory_efficiency:.3f}, compute eff {c.compute_efficiency:.3f}, "
            f"step overhead {c.step_overhead_s * 1e3:.2f} ms, per seq {c.per_seq_s * 1e6:.1f} us, "
            f"first-token overhead {c.first_token_overhead_s * 1e3:.1f} ms"
            + ("" if measured_points(profile) else " (priors: nothing measured)")
        )
        for row in calibration_errors(profile):
            p = row.point
            e = row.errors
            lines.append(
                f"{'':34} {p.concurrency:>4} {p.input_tokens:>5}/{p.output_tokens:<4} "
                f"{p.ttft_p50_s:>7.3f} vs {row.ttft_s:>6.3f} {p.itl_p50_s * 1e3:>6.2f} vs "
                f"{row.itl_s * 1e3:>5.2f} {p.output_tokens_per_s:>7.0f} vs "
                f"{row.output_tokens_per_s:>5.0f}  {e[0]:+.1%} {e[1]:+.1%} {e[2]:+.1%}"
            )
    errors = [abs(e) for p in profiles.values() for r in calibration_errors(p) for e in r.errors]
    if errors:
        lines.append("")
        lines.append(
            f"mean |error| {sum(errors) / len(errors):.1%}, max |error| {max(errors):.1%} "
            f"over {len(errors) // 3} measured points"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys
    from pathlib import Path

    from weir.api.profile import load_profiles

    print(
        report(load_profiles(Path(sys.argv[1] if len(sys.argv) > 1 else "engines/profiles"))),
        end="",
    )
