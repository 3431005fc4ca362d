"""Capacity learned online: the speed belief converges, ignores no data, shrugs off a wild window.

Evidence is generated from a known true speed with the profile curve the
estimator reads (time per output token = profile ITL / s), with multiplicative
noise, every 15 s over a 60 s window, as the operator reads it.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.conftest import conversation_mix, snapshot
from weir.api import EngineProfile
from weir.controller.control import decode_state, encode_state
from weir.planner.capacity import Workload, model_at_speed, model_for
from weir.planner.learn import learn_speeds, observed_speed, profile_itl
from weir.planner.optimise import plan
from weir.planner.speed import SPEED_BOUNDS, SpeedBelief, update
from weir.planner.types import EngineWindow, PlannerState, PlanningSpec

PERIOD_S, WINDOW_S = 15.0, 60.0


def _window(profile: EngineProfile, speed: float, rng: random.Random, noise: float = 0.05):
    """What engines at `speed` x their profile show at a moderate load."""
    mix = conversation_mix(10.0)
    requests = sum(b.requests for b in mix)
    prefill = sum(b.prefill_tokens for b in mix) / requests
    running, rate = 12.0, 2.0
    tpot = profile_itl(profile, running, prefill) / speed * math.exp(rng.gauss(0.0, noise))
    return EngineWindow(2.0, running, tpot, rate, 4000.0), mix


def _learn(profile: EngineProfile, speed: float, minutes: float, seed: int = 1) -> SpeedBelief:
    rng = random.Random(seed)
    belief = SpeedBelief()
    for k in range(int(minutes * 60 / PERIOD_S)):
        window, mix = _window(profile, speed, rng)
        belief = update(
            belief, observed_speed(window, profile, mix), 4000.0, k * PERIOD_S, WINDOW_S
        )
    return belief


def test_converges_to_the_true_speed_within_forty_minutes(profiles):
    profile = profiles["spot"]
    for truth in (0.8, 0.85, 1.0, 1.2):
        belief = _learn(profile, truth, minutes=40)
        assert abs(belief.speed - truth) <= 0.03 * truth, (truth, belief)
        assert belief.sd <= 0.03
        assert belief.planning_speed <= belief.speed
        assert "x profile" in belief.describe("spot") and "min of data" in belief.describe("spot")


def test_a_slower_engine_takes_less_at_the_slo(profiles, spec: PlanningSpec):
    workload = Workload(1000.0, 150.0, 4000.0)
    slo = spec.deployment.slo
    for pool, profile in profiles.items():
        full = model_at_speed(profile, 1.0).max_rate(workload, slo).rate_rps
        slow = model_at_speed(profile, 0.85).max_rate(workload, slo).rate_rps
        assert 0 < slow < 0.9 * full, (pool, slow, full)
        assert model_at_speed(profile, 1.0) is model_for(profile)


def test_never_moves_on_no_data(profiles):
    profile = profiles["spot"]
    belief = SpeedBelief()
    idle = EngineWindow(2.0, 0.1, 0.02, 0.01, 50.0)  # idling engines say nothing of speed
    mix = conversation_mix(1.0)
    assert observed_speed(idle, profile, mix) is None
    for seen, tokens in ((None, 5000.0), (0.9, 10.0), (math.nan, 5000.0), (-1.0, 5000.0)):
        assert update(belief, seen, tokens, 100.0, WINDOW_S) == belief
    assert belief.planning_speed == 1.0
    assert "no engine data yet" in belief.describe("spot")


def test_one_wild_window_does_not_move_a_settled_belief_far(profiles):
    settled = _learn(profiles["spot"], 1.0, minutes=30)
    for wild in (10.0, 0.05):
        after = update(settled, wild, 4000.0, 30 * 60 + PERIOD_S, WINDOW_S)
        assert abs(after.speed - settled.speed) <= 0.05 * settled.speed, (wild, after)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
            st.floats(min_value=0, max_value=1e7),
            st.floats(min_value=0, max_value=600),
        ),
        max_size=40,
    )
)
def test_any_evidence_keeps_the_belief_finite_bounded_and_sure_of_itself(windows):
    belief, now = SpeedBelief(), 0.0
    for seen, tokens, gap in windows:
        now += gap
        belief = update(belief, seen, tokens, now, WINDOW_S)
        assert math.isfinite(belief.log_mean) and belief.log_var > 0
        assert SPEED_BOUNDS[0] <= belief.speed <= SPEED_BOUNDS[1]
        assert 0 < belief.planning_speed <= max(belief.speed, 1.0)


def test_the_planner_sizes_replicas_at_the_learned_speed(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
):
    rng = random.Random(3)
    state: PlannerState | None = None
    plans = []
    for k in range(120):  # 30 minutes of slow engines on every pool
        at = 1000.0 + k * PERIOD_S
        engines = {pool: _window(profiles[pool], 0.85, rng)[0] for pool in profiles}
        view = replace(snapshot(at, 20.0), engines=engines, window_s=WINDOW_S)
        result = plan(view, spec, profiles, state, at)
        state, plans = result.state, [*plans, result]
    beliefs = dict(state.speeds)
    assert all(abs(b.speed - 0.85) <= 0.03 for b in beliefs.values()), beliefs
    last = plans[-1]
    # The same moment planned without what was learned: the learned plan buys more capacity.
    at = 1000.0 + 120 * PERIOD_S
    view = replace(snapshot(at, 20.0), window_s=WINDOW_S)
    learned = plan(view, spec, profiles, PlannerState(speeds=state.speeds), at)
    naive = plan(view, spec, profiles, PlannerState(), at)
    assert sum(learned.replicas.values()) > sum(naive.replicas.values()), (learned, naive)
    for pool, limit in learned.spill.concurrency_limit_by_pool.items():
        assert limit < naive.spill.concurrency_limit_by_pool[pool]
    assert any("0.8" in r and "x profile" in r for r in last.reasons), last.reasons
    restored = decode_state(encode_state(state))
    assert restored is not None and dict(restored.speeds) == beliefs


def test_a_window_whose_load_changed_is_no_evidence(profiles):
    profile = profiles["spot"]
    window, mix = _window(profile, 0.85, random.Random(5))
    steady = replace(window, e2e_s=window.running / window.requests_per_s)
    assert observed_speed(steady, profile, mix) is not None
    ramping = replace(window, e2e_s=3 * window.running / window.requests_per_s)
    assert observed_speed(ramping, profile, mix) is None  # Little's law does not hold


def _spot_learns(pools: dict[str, EngineProfile], periods: int, seed: int):
    """Beliefs of `pools` after only the spot pool's engines, at 0.8x, showed evidence."""
    rng = random.Random(seed)
    beliefs: tuple[tuple[str, SpeedBelief], ...] = ()
    for k in range(periods):
        window, mix = _window(pools["spot"], 0.8, rng)
        beliefs = learn_speeds(beliefs, {"spot": window}, pools, mix, k * PERIOD_S, WINDOW_S)
    return beliefs, window, mix


def test_pools_of_one_engine_learn_together(profiles):
    """Evidence from the spot pool is evidence about on-demand engines of the same profile:
    an untried pool is not planned faster than the one that shows the engine is slow."""
    assert profiles["spot"] == profiles["on-demand"]
    beliefs, window, mix = _spot_learns(profiles, periods=80, seed=7)
    learned = dict(beliefs)
    assert learned["on-demand"] == learned["spot"]
    assert abs(learned["spot"].speed - 0.8) <= 0.03, learned
    # both pools serving: one window each, merged, counts once per period
    both = learn_speeds(
        beliefs,
        {"spot": window, "on-demand": window},
        profiles,
        mix,
        80 * PERIOD_S,
        WINDOW_S,
    )
    one = learn_speeds(beliefs, {"spot": window}, profiles, mix, 80 * PERIOD_S, WINDOW_S)
    assert dict(both)["spot"] == dict(both)["on-demand"]
    assert dict(both)["spot"].evidence_s == dict(one)["spot"].evidence_s  # one period, once
    assert dict(both)["spot"].log_var <= dict(one)["spot"].log_var  # twice the tokens behind it


def test_pools_of_different_engines_learn_apart(profiles):
    other = profiles["spot"].model_copy(update={"gpu": "H200-SXM-141GB"})
    beliefs, _, _ = _spot_learns({"spot": profiles["spot"], "h200": other}, periods=40, seed=8)
    learned = dict(beliefs)
    assert learned["h200"] == SpeedBelief()
    assert learned["spot"].speed < 0.85
