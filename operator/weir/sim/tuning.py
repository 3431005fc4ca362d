"""Tuning the peers: a sweep over each family's knobs, the winner frozen in a file.

A peer with its knobs left at someone's guess flatters weir, so each family
is swept over the settings its operators would try, on tuning workloads
only; the winner is the setting with the lowest geometric-mean $ per useful
token among those that reach the useful-token target on every tuning
workload (the most useful one when none does). The winners are written to
bench/peers/tuned.yaml with their figures and read back by the benchmark,
which reports them on other workloads (and on the tuning ones, marked so).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from weir.sim.peers import Kind, PeerSetting, Placement

PLACEMENTS: tuple[Placement, ...] = ("on-demand", "spot", "mixed")


PARALLEL = (0.6, 0.8, 1.0)  # max_parallel_requests per replica, x the SLO concurrency


def _grid(kind: Kind, placement: Placement, **axes: Sequence[Any]) -> list[PeerSetting]:
    """Every combination of the axes; with fallback, also the gateway's per-replica limit
    (an SRE tunes max_parallel_requests: the SLO concurrency of a profile is a guess)."""
    names = list(axes)
    settings = [
        PeerSetting(kind=kind, placement=placement, **dict(zip(names, values, strict=True)))
        for values in itertools.product(*(axes[n] for n in names))
    ]
    return [
        replace(s, parallel=parallel)
        for s in settings
        for parallel in (PARALLEL if s.fallback else (1.0,))
    ]


def sweep_grid() -> dict[str, list[PeerSetting]]:
    """Every family's candidate settings (what an SRE would try, not fitted to a trace).

    Small on purpose (161 settings): the sweep runs on two shared cores. The
    HPA grid is the widest because the issue's reference peer is one.
    """
    out: dict[str, list[PeerSetting]] = {}
    fallback = (False, True)
    for placement in PLACEMENTS:
        families = (
            _grid("hpa", placement, fallback=fallback, target=(0.7, 1.0), window_s=(60, 300)),
            _grid("keda_rate", placement, fallback=fallback, target=(0.8, 1.0)),
            _grid("keda_queue", placement, fallback=fallback, target=(2, 8)),
            _grid("llmd_slo", placement, fallback=fallback, target=(0.55, 0.8)),
            _grid("static", placement, fallback=fallback, target=(1.0, 1.3)),
        )
        for grid in families:
            out[grid[0].family] = grid
    out["spothedge"] = _grid(
        "spothedge",
        "spot",
        fallback=fallback,
        target=(1.0,),
        overprovision=(0, 1),
        window_s=(1200,),
    )
    out["hybrid"] = _grid(
        "hybrid",
        "spot",
        fallback=(True,),
        target=(0.8,),
        long_prompt_tokens=(2048, 4096, 8192),
        window_s=(60,),
    )
    return out


@dataclass(frozen=True)
class Trial:
    """One setting's figures on the tuning workloads."""

    setting: PeerSetting
    dollars: tuple[float, ...]
    useful: tuple[float, ...]

    def meets(self, target: float) -> bool:
        """Reaches the useful-token target on every tuning workload."""
        return all(u >= target for u in self.useful)

    @property
    def score(self) -> float:
        """Geometric mean of $ per useful token over the tuning workloads."""
        if not self.dollars or any(not math.isfinite(d) or d <= 0 for d in self.dollars):
            return math.inf
        return math.exp(sum(math.log(d) for d in self.dollars) / len(self.dollars))


def pick(trials: Iterable[Trial], target: float) -> Trial:
    """The cheapest setting that meets the target everywhere, else the most useful."""
    pool = list(trials)
    if not pool:
        raise ValueError("no trials to pick from")
    meeting = [t for t in pool if t.meets(target)]
    if meeting:
        return min(meeting, key=lambda t: (t.score, repr(t.setting)))
    return max(pool, key=lambda t: (min(t.useful), -t.score))


Evaluate = Callable[[PeerSetting], tuple[tuple[float, ...], tuple[float, ...]]]


def tune(
    grid: Mapping[str, Sequence[PeerSetting]],
    evaluate: Evaluate,
    target: float,
    on_trial: Callable[[Trial], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every setting, pick each family's winner, and the best with fallback each way."""
    out: dict[str, dict[str, Any]] = {}
    for family, settings in grid.items():
        trials = []
        for setting in settings:
            dollars, useful = evaluate(setting)
            trial = Trial(setting, dollars, useful)
            trials.append(trial)
            if on_trial is not None:
                on_trial(trial)
        best = pick(trials, target)
        entry: dict[str, Any] = {"setting": best.setting.knobs(), **_figures(best, target)}
        entry["tried"] = len(trials)
        for flag in (False, True):
            same = [t for t in trials if t.setting.fallback == flag]
            if same and any(t.setting.fallback != flag for t in trials):
                alt = pick(same, target)
                key = "with_fallback" if flag else "without_fallback"
                entry[key] = {"setting": alt.setting.knobs(), **_figures(alt, target)}
        out[family] = entry
    return out


def _figures(trial: Trial, target: float) -> dict[str, Any]:
    return {
        "tuning_dollars_per_million_useful_tokens": [round(d, 4) for d in trial.dollars],
        "tuning_useful_token_fraction": [round(u, 4) for u in trial.useful],
        "meets_target_on_tuning": trial.meets(target),
    }


def write_tuned(path: Path, families: Mapping[str, Any], how: Mapping[str, Any]) -> None:
    """Freeze the winners (and how they were found) in a YAML file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"how": dict(how), "families": dict(families)}, sort_keys=False)
    path.write_text(text)


def load_tuned(path: Path) -> dict[str, PeerSetting]:
    """The frozen winners by family name."""
    data = yaml.safe_load(path.read_text())
    families = data.get("families", {}) if isinstance(data, dict) else {}
    return {name: PeerSetting.from_knobs(entry["setting"]) for name, entry in families.items()}


def load_tuned_variant(path: Path, family: str, variant: str) -> PeerSetting:
    """A family's `with_fallback` / `without_fallback` winner (for acceptance checks)."""
    data = yaml.safe_load(path.read_text())
    entry = data["families"][family]
    chosen = entry.get(variant, entry)
    return PeerSetting.from_knobs(chosen["setting"])


def default_setting(family: str) -> PeerSetting:
    """The first grid point of a family (for tests and when no tuned file exists)."""
    grid = sweep_grid()
    if family not in grid:
        raise ValueError(f"unknown peer family {family!r}; known: {sorted(grid)}")
    return replace(grid[family][0])
