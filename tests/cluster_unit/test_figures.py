"""The closed loop's GPU dollars: a gauge integrated from Prometheus' raw samples."""

from __future__ import annotations

from typing import Any

import pytest

from weir_lab.closedloop.figures import Reader, series_end


class _Answers:
    """PrometheusConnect's custom_query, answering with fixed range vectors."""

    def __init__(self, series: list[dict[str, Any]]) -> None:
        self.series = series
        self.queries: list[str] = []

    def custom_query(self, query: str, params: dict[str, str]) -> list[dict[str, Any]]:
        self.queries.append(query)
        return self.series


def _series(pod: str, times: range, value: float) -> dict[str, Any]:
    return {
        "metric": {"instance": pod, "pool": "od"},
        "values": [[float(t), str(value)] for t in times],
    }


def test_a_series_whose_target_went_away_stops_counting():
    # an earlier run's operator pod, last scraped 30 s before this run, and this run's
    earlier = _series("10.0.0.4:9464", range(900, 971, 2), 7.8)
    current = _series("10.0.0.6:9464", range(1000, 1241, 2), 7.8)
    reader = Reader(_Answers([earlier, current]), "default", "llm")  # type: ignore[arg-type]
    totals = reader.integrate_by("weir_gpu_spend_dollars_per_hour", "pool", 1000.0, 1240.5)
    assert totals["od"] == pytest.approx(7.8 * 240.5 / 3600)


def test_a_live_series_holds_its_last_sample_to_the_end():
    samples = [(t, 1.0) for t in (0.0, 2.0, 4.0, 6.0)]
    assert series_end(samples, 7.0) == 7.0
    assert series_end(samples, 60.0) == 10.0  # two scrape intervals, then it is gone
    assert series_end([(5.0, 1.0)], 60.0) == 60.0
