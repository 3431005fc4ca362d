"""The Prometheus metrics source: one query set per cycle, one typed snapshot for all.

A source only collects. It returns an immutable, timestamped snapshot that
knows whether it is healthy; Prometheus being down, slow or answering oddly
never raises into the control loop. Odd answers are handled one by one:
- no series for a deployment: it had no traffic in the window (zero), which
  is different from a failed query (unhealthy);
- several series for one deployment (a template that keeps extra labels):
  summed, and noted;
- NaN or Inf: that value is unknown (None), and noted.

Histograms (the prompt-length mix) come back as cumulative (le, rate) pairs
per deployment; a bucket with an unknown value drops the whole histogram (the
planner then falls back to the mean), since a hole would shift every bucket
above it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from weir.metrics.snapshot import DeploymentMetrics, Histogram, Key, MetricsSnapshot
from weir.metrics.templates import HISTOGRAM_NAMES, QUERY_NAMES, SPLIT_NAMES, QueryTemplates
from weir.planner.types import EngineWindow

__all__ = ["DeploymentMetrics", "MetricsSnapshot", "PrometheusSource"]


def _attributed(
    result: list[dict[str, Any]], ns_label: str, name_label: str
) -> Iterator[tuple[Key, dict[str, Any], float | None]]:
    """The series of an answer that name a deployment: its key, all its labels, and
    its value (None when unreadable; NaN and Inf as Prometheus sent them)."""
    for series in result:
        labels = series.get("metric") if isinstance(series, dict) else None
        if not isinstance(labels, dict):
            continue
        key = (labels.get(ns_label, ""), labels.get(name_label, ""))
        if not key[0] or not key[1]:
            continue  # not attributable to a deployment
        try:
            value: float | None = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            value = None
        yield key, labels, value


def parse_vector(
    result: list[dict[str, Any]], ns_label: str, name_label: str
) -> tuple[dict[Key, float | None], list[str]]:
    """Instant-vector answer -> value per deployment, with notes on odd answers."""
    values: dict[Key, float | None] = {}
    seen: dict[Key, int] = {}
    notes: list[str] = []
    for key, _, value in _attributed(result, ns_label, name_label):
        if value is not None and not math.isfinite(value):
            notes.append(f"{key[0]}/{key[1]}: non-finite value {value}")
            value = None
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            notes.append(f"{key[0]}/{key[1]}: {seen[key]} series, summed")
            previous = values.get(key)
            value = None if previous is None or value is None else previous + value
        values[key] = value
    return values, notes


def parse_histogram(
    result: list[dict[str, Any]], ns_label: str, name_label: str
) -> tuple[dict[Key, Histogram], list[str]]:
    """`sum by (..., le)` answer -> cumulative buckets per deployment, +Inf last."""
    buckets: dict[Key, dict[float, float]] = {}
    broken: set[Key] = set()
    notes: list[str] = []
    for key, labels, value in _attributed(result, ns_label, name_label):
        try:
            le = float(labels["le"])
        except (KeyError, TypeError, ValueError):
            le = math.nan
        if math.isnan(le) or value is None or not math.isfinite(value) or value < 0:
            broken.add(key)
            continue
        per_key = buckets.setdefault(key, {})
        per_key[le] = per_key.get(le, 0.0) + value
    for key in broken:
        notes.append(f"{key[0]}/{key[1]}: histogram with an unreadable bucket, dropped")
        buckets.pop(key, None)
    return {key: tuple(sorted(b.items())) for key, b in buckets.items()}, notes


def parse_split(
    result: list[dict[str, Any]], ns_label: str, name_label: str, *split_labels: str
) -> tuple[dict[Key, dict[str, float]], list[str]]:
    """`sum by (..., labels)` answer -> value per label value (joined by "/") per deployment.

    A non-finite value drops that deployment's whole split (its parts must add up).
    """
    parts: dict[Key, dict[str, float]] = {}
    broken: set[Key] = set()
    for key, labels, value in _attributed(result, ns_label, name_label):
        if value is None or not math.isfinite(value) or value < 0:
            broken.add(key)
            continue
        per_key = parts.setdefault(key, {})
        part = "/".join(str(labels.get(label, "")) for label in split_labels)
        per_key[part] = per_key.get(part, 0.0) + value
    notes = [
        f"{k[0]}/{k[1]}: {'/'.join(split_labels)} split with an unreadable value, dropped"
        for k in broken
    ]
    for key in broken:
        parts.pop(key, None)
    return parts, notes


def _from_splits(splits: dict[str, dict[Key, dict[str, float]]], key: Key) -> dict[str, Any]:
    """The DeploymentMetrics fields the split queries carry (no series: zero, no engines)."""
    output = splits.get("output_tokens", {}).get(key, {})
    local = splits.get("local_tokens", {}).get(key, {})
    return {
        "output_tokens_per_s": sum(output.values()),
        "useful_tokens_per_s": output.get("useful", 0.0),
        "local_output_tokens": sum(local.values()),
        "local_useful_tokens": local.get("useful", 0.0),
        "engines": engine_windows(splits.get("engines", {}).get(key, {})),
    }


def _fields(by_field: dict[str, dict[Key, float | None]], key: Key) -> dict[str, Any]:
    return {f: by_field.get(f, {}).get(key, 0.0) for f in QUERY_NAMES}


def engine_windows(parts: dict[str, float]) -> tuple[tuple[str, EngineWindow], ...]:
    """Per pool, the engines' window from the split's quantities (incomplete pools left out)."""
    pools: dict[str, dict[str, float]] = {}
    for part, value in parts.items():
        pool, _, quantity = part.rpartition("/")
        pools.setdefault(pool, {})[quantity] = value
    windows = []
    for pool, q in sorted(pools.items()):
        replicas, count = q.get("replicas", 0.0), q.get("tpot_count", 0.0)
        if not pool or replicas <= 0 or count <= 0:
            continue
        window = EngineWindow(
            replicas=replicas,
            running=q.get("running", 0.0) / replicas,
            tpot_s=q.get("tpot_sum", 0.0) / count,
            requests_per_s=q.get("requests", 0.0) / replicas,
            output_tokens=q.get("tokens", 0.0),
            e2e_s=q["e2e_sum"] / q["e2e_count"] if q.get("e2e_count") else 0.0,
        )
        windows.append((pool, window))
    return tuple(windows)


class MalformedAnswerError(ValueError):
    """Prometheus answered, but not with an instant vector (a scalar, a string, no data)."""


class PrometheusSource:
    """Reads the query set from Prometheus through prometheus-api-client."""

    def __init__(
        self,
        url: str,
        window_s: float = 120.0,
        templates: QueryTemplates | None = None,
        timeout_s: float = 5.0,
    ) -> None:
        self.templates = templates or QueryTemplates()
        self.window_s = window_s
        self._timeout = max(1, round(timeout_s))
        # One quick retry at most: a cycle that waits out a long backoff delays every
        # deployment's step (they share the snapshot); the next cycle asks again anyway.
        retry = Retry(total=1, backoff_factor=0.1, status_forcelist=(502, 503, 504))
        self._client = PrometheusConnect(
            url=url, disable_ssl=True, timeout=self._timeout, retry=retry
        )

    def _query(self, query: str) -> list[dict[str, Any]]:
        """One instant query's result, which must be a vector (a list of series objects)."""
        result = self._client.custom_query(query)
        if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
            raise MalformedAnswerError(
                f"expected an instant vector, got {type(result).__name__}: {str(result)[:80]}"
            )
        return result

    def collect(self, now_s: float) -> MetricsSnapshot:
        queries = self.templates.rendered(self.window_s)
        by_field: dict[str, dict[Key, float | None]] = {}
        histograms: dict[str, dict[Key, Histogram]] = {}
        splits: dict[str, dict[Key, dict[str, float]]] = {}
        notes: dict[Key, list[str]] = {}
        for name, query in queries.items():
            try:
                result = self._query(query)
            except (
                PrometheusApiClientException,
                requests.RequestException,
                ValueError,
                KeyError,
                TypeError,
                MalformedAnswerError,
            ) as exc:  # down, slow, or an answer that is not what a vector query returns
                return MetricsSnapshot(
                    now_s,
                    self.window_s,
                    healthy=False,
                    error=f"query {name} failed: {type(exc).__name__}: {str(exc)[:200]}",
                    queries=len(by_field) + len(histograms) + len(splits) + 1,
                )
            labels = (self.templates.namespace_label, self.templates.deployment_label)
            if name in HISTOGRAM_NAMES:
                histograms[name], odd = parse_histogram(result, *labels)
            elif name in SPLIT_NAMES:
                by = [
                    getattr(self.templates, n) if n.endswith("_label") else n
                    for n in SPLIT_NAMES[name]
                ]
                splits[name], odd = parse_split(result, *labels, *by)
            else:
                by_field[name], odd = parse_vector(result, *labels)
            for note in odd:
                ns, _, rest = note.partition("/")
                notes.setdefault((ns, rest.split(":")[0]), []).append(f"{name}: {note}")
        keys: set[Key] = set()
        for values in by_field.values():
            keys.update(values)
        for parts in splits.values():
            keys.update(parts)
        deployments = {
            key: DeploymentMetrics(
                **_fields(by_field, key),
                **_from_splits(splits, key),
                prefill_histogram=histograms.get("prefill_histogram", {}).get(key, ()),
                notes=tuple(notes.get(key, ())),
                present=key in by_field.get("requests_per_s", {}),
            )
            for key in keys
        }
        return MetricsSnapshot(now_s, self.window_s, True, None, deployments, len(queries))
