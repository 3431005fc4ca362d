"""Two exports users already have: OpenAI's usage buckets and LiteLLM's spend logs.

OpenAI's Usage API (`GET /v1/organization/usage/completions`) answers pages
of time buckets, `{start_time, end_time, results: [{input_tokens,
output_tokens, input_cached_tokens, num_model_requests, model, ...}]}`, with
epoch-second bounds and `bucket_width` 1m, 1h or 1d. It has totals, not
requests: each bucket's `num_model_requests` become requests that arrive
uniformly at random within the bucket (a Poisson process given the count)
and each carry the bucket's mean prompt and output tokens, and the notes say
so. The dashboard's CSV export has no documented columns, so a CSV is read
when it has the API's field names (one bucket and result per row, as the
OpenAI cookbook's flattening writes it); anything else is a csv trace with a
column map.

LiteLLM's proxy logs one row per request (the `LiteLLM_SpendLogs` table,
served by `GET /spend/logs` as a JSON list and by the UI as `{"data":
[...]}` pages): `startTime`, `endTime`, `prompt_tokens`, `completion_tokens`,
`model`, `call_type`, `cache_hit`, `status`, `request_id`. A request arrives
at its `startTime`. Rows that never reached a model are left out and counted
in the notes: calls that generate no text (embeddings, images, audio),
LiteLLM cache hits, and failed calls (a retry is its own row).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from weir.sim.readers import Loaded, count, csv_rows, flatten, json_records, parse_instant
from weir.sim.traces import Request, TraceError, checked_request

ExportFormat = Literal["mooncake", "openai-usage", "litellm-spend"]
_USAGE_COLUMNS = {"start_time", "end_time", "input_tokens", "output_tokens", "num_model_requests"}
_SPEND_COLUMNS = {"startTime", "prompt_tokens", "completion_tokens"}
# LiteLLM call types that generate text (completion, acompletion, atext_completion,
# responses, anthropic_messages, generate_content, ...).
_GENERATING = ("completion", "responses", "messages", "generate_content")
_FAILED = ("failure", "failed", "error")
SPREAD_SEED = 0


def _is_bucket(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and "start_time" in value
        and ("results" in value or "result" in value)
    )


def _is_spend_row(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and "startTime" in value
        and ("prompt_tokens" in value or "completion_tokens" in value)
    )


def json_format(record: Any) -> ExportFormat | None:
    """The format of a trace whose first JSON record is `record` (lists and pages unwrapped)."""
    for _ in range(3):
        if isinstance(record, list) and record:
            record = record[0]
        elif isinstance(record, dict) and isinstance(record.get("data"), list) and record["data"]:
            if _is_bucket(record) or _is_spend_row(record):
                break
            record = record["data"][0]
    if isinstance(record, dict) and {"timestamp", "input_length"} <= set(record):
        return "mooncake"
    if _is_bucket(record):
        return "openai-usage"
    if _is_spend_row(record):
        return "litellm-spend"
    return None


def csv_format(header: list[str]) -> Literal["openai-usage", "litellm-spend"] | None:
    """The export a CSV header comes from, if it is one of the two."""
    if set(header) >= _USAGE_COLUMNS:
        return "openai-usage"
    if set(header) >= _SPEND_COLUMNS:
        return "litellm-spend"
    return None


def _is_json(path: Path) -> bool:
    with path.open(encoding="utf-8-sig") as handle:
        return handle.read(4096).lstrip()[:1] in ("[", "{")


def _usage_buckets(path: Path) -> Iterator[tuple[str, float, float, list[Mapping[str, Any]]]]:
    """(where, start s, end s, results) of every bucket, from JSON or a flattened CSV."""
    if _is_json(path):
        for outer, record in json_records(path):
            for where, bucket in flatten(outer, record, _is_bucket):
                if not _is_bucket(bucket):
                    raise TraceError(f"{where}: not a usage bucket (start_time, results)")
                results = bucket.get("results", bucket.get("result")) or []
                yield where, *_bounds(where, bucket), list(results)
        return
    for line, row in csv_rows(path):
        where = f"{path}:{line}"
        yield where, *_bounds(where, row), [row]


def _bounds(where: str, bucket: Mapping[str, Any]) -> tuple[float, float]:
    try:
        start = parse_instant(bucket.get("start_time"))
        end = parse_instant(bucket.get("end_time"))
    except ValueError as exc:
        raise TraceError(f"{where}: bad bucket bounds: {exc}") from exc
    if end <= start:
        raise TraceError(f"{where}: the bucket ends ({end}) before it starts ({start})")
    return start, end


def _share(total: int, n: int, i: int) -> int:
    """Request i's part of `total` split over n requests (the remainder to the first ones)."""
    return total // n + (1 if i < total % n else 0)


def load_openai_usage(path: Path, seed: int = SPREAD_SEED) -> Loaded:
    """Requests from OpenAI usage buckets (see the module docstring for how they are spread)."""
    rng = random.Random(seed)
    loaded = Loaded()
    widths: Counter[float] = Counter()
    inputs = cached = empty = 0
    for where, start, end, results in _usage_buckets(path):
        widths[end - start] += 1
        for result in results:
            try:
                n = count(result.get("num_model_requests"), "num_model_requests")
                inp = count(result.get("input_tokens"), "input_tokens")
                out = count(result.get("output_tokens"), "output_tokens")
                cached += count(result.get("input_cached_tokens"), "input_cached_tokens")
                model = str(result.get("model") or "")
                times = sorted(rng.uniform(start, end) for _ in range(n))
                loaded.rows.extend(
                    (checked_request(t, _share(inp, n, i), _share(out, n, i)), model)
                    for i, t in enumerate(times)
                )
            except ValueError as exc:
                raise TraceError(f"{where}: bad usage result: {exc}") from exc
            inputs += inp
            empty += 1 if n == 0 and (inp or out) else 0
    sizes = ", ".join(f"{w:g} s ({k})" for w, k in sorted(widths.items()))
    loaded.notes.append(
        f"openai-usage: {sum(widths.values())} buckets of {sizes} holding {len(loaded.rows)} "
        "requests; the export has totals per bucket, so each request gets its bucket's mean "
        "prompt and output tokens and an arrival drawn uniformly within the bucket (a Poisson "
        f"process given the count, seed {seed}): bursts shorter than a bucket and the spread of "
        "request sizes are not in the data (export with bucket_width=1m for the closest replay)"
    )
    if cached:
        loaded.notes.append(
            f"{cached / max(inputs, 1):.0%} of input tokens were cached at OpenAI; they are "
            "replayed without prefix reuse (the export has no prompts to match)"
        )
    if empty:
        loaded.notes.append(f"{empty} results with tokens but no requests were left out")
    return loaded


def _spend_rows(path: Path) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if _is_json(path):
        for outer, record in json_records(path):
            for where, row in flatten(outer, record, _is_spend_row):
                if not isinstance(row, dict):
                    raise TraceError(f"{where}: not a spend log row: {row!r:.80}")
                yield where, row
        return
    for line, row in csv_rows(path):
        yield f"{path}:{line}", row


def _skip_reason(row: Mapping[str, Any]) -> str | None:
    call = str(row.get("call_type") or "")
    if call and not any(kind in call for kind in _GENERATING):
        return "calls that generate no text, by call_type"
    if str(row.get("cache_hit")).lower() == "true":
        return "LiteLLM cache hits, where no model ran"
    if str(row.get("status") or "").lower() in _FAILED:
        return "failed calls"
    return None


def load_litellm_spend(path: Path) -> Loaded:
    """Requests from LiteLLM spend logs: JSON as `/spend/logs` answers it, or the table as CSV."""
    loaded = Loaded()
    skipped: Counter[str] = Counter()
    for where, row in _spend_rows(path):
        reason = _skip_reason(row)
        if reason is not None:
            skipped[reason] += 1
            continue
        try:
            request: Request = checked_request(
                parse_instant(row.get("startTime")),
                count(row.get("prompt_tokens"), "prompt_tokens"),
                count(row.get("completion_tokens"), "completion_tokens"),
            )
        except ValueError as exc:
            raise TraceError(f"{where}: bad spend log row: {exc}") from exc
        loaded.rows.append((request, str(row.get("model") or row.get("model_group") or "")))
    loaded.notes.append(
        f"litellm-spend: {len(loaded.rows)} requests, each arriving at its startTime with "
        "prompt_tokens in and completion_tokens out"
    )
    if skipped:
        left = "; ".join(f"{reason} ({n})" for reason, n in skipped.most_common())
        loaded.notes.append(f"left out: {left}")
    return loaded
