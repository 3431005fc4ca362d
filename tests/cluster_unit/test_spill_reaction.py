"""The spill-reaction figure of summary.json, on hand-made client records."""

from __future__ import annotations

import math

from weir_lab.closedloop.progress import Sample
from weir_lab.closedloop.report import spill_reaction_s
from weir_lab.closedloop.traffic import Replay, Sent


def _sample() -> Sample:
    return Sample(0.0, {"od": 1}, {"od": 1}, None, None, {"od": 2})


def _sent(at: float, end: float, backend: str, status: int = 200) -> Sent:
    return Sent(at, 100, 10, status=status, backend=backend, end_s=end)


def one_ready(_: float) -> dict[str, int]:
    return {"od": 1}


def test_spill_at_the_first_request_after_saturation_is_zero():
    replay = Replay([_sent(0, 10, "local"), _sent(1, 10, "local"), _sent(2.5, 3, "hosted")])
    assert spill_reaction_s(replay, [_sample()], one_ready) == 0.0


def test_a_rejected_request_during_saturation_counts_until_the_first_spill():
    replay = Replay(
        [
            _sent(0, 10, "local"),
            _sent(1, 10, "local"),
            _sent(2, 2.1, "", status=429),
            _sent(4.5, 5, "hosted"),
        ]
    )
    assert spill_reaction_s(replay, [_sample()], one_ready) == 2.5


def test_saturation_that_never_spills_is_infinite():
    replay = Replay([_sent(0, 10, "local"), _sent(1, 10, "local"), _sent(2, 2.1, "", 429)])
    assert math.isinf(spill_reaction_s(replay, [_sample()], one_ready))
