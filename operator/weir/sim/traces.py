"""Request traces: load both public formats, write them, reshape them.

The benchmark must replay real traffic, and real traces come in two shapes
(Azure's CSV and Mooncake's JSON lines), of any size, sometimes with mixed
timestamp formats. Loaders accept both and name the line of a bad row.
An hour of traffic is short, so the reshaping helpers (rate scaling by
superposing jittered copies, which keeps the minute-level shape; time
scaling; tiling; bursts) build longer or busier workloads, and the generator
writes synthetic traces in either format for tests.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

TraceFormat = Literal["azure", "mooncake"]
_HASH_STRIDE = 1_000_000_000


class TraceError(ValueError):
    """A trace file cannot be read; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request: arrival time (s from trace start), prompt and output tokens."""

    arrival_s: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()


def detect_format(path: Path) -> TraceFormat:
    """Guess the format from the first non-empty line."""
    with path.open() as handle:
        for line in handle:
            if line.strip():
                return "mooncake" if line.lstrip().startswith("{") else "azure"
    raise TraceError(f"{path}: empty trace")


def load_trace(path: Path, fmt: TraceFormat | None = None) -> list[Request]:
    """Read a trace in either format, sorted by arrival, starting at 0 s."""
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    fmt = fmt or detect_format(path)
    rows = _load_azure(path) if fmt == "azure" else _load_mooncake(path)
    if not rows:
        raise TraceError(f"{path}: no requests")
    rows.sort(key=lambda r: r.arrival_s)
    start = rows[0].arrival_s
    return [replace(r, arrival_s=r.arrival_s - start) for r in rows]


def parse_timestamp(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 stamp (every loader's parser): naive stamps
    are UTC; any fraction length is accepted."""
    text = text.strip()
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(itertools.takewhile(str.isdigit, tail))
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail[len(digits) :]}"
    stamp = datetime.fromisoformat(text)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _load_azure(path: Path) -> list[Request]:
    rows: list[Request] = []
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[:3]] != [
            "TIMESTAMP",
            "ContextTokens",
            "GeneratedTokens",
        ]:
            raise TraceError(f"{path}:1: expected header TIMESTAMP,ContextTokens,GeneratedTokens")
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                rows.append(checked_request(parse_timestamp(row[0]), int(row[1]), int(row[2])))
            except (ValueError, IndexError) as exc:
                raise TraceError(f"{path}:{line_no}: bad row {row!r}: {exc}") from exc
    return rows


def _load_mooncake(path: Path) -> list[Request]:
    rows: list[Request] = []
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                hashes = tuple(int(h) for h in obj.get("hash_ids", ()))
                rows.append(
                    checked_request(
                        float(obj["timestamp"]) / 1000.0,
                        int(obj["input_length"]),
                        int(obj["output_length"]),
                        hashes,
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise TraceError(f"{path}:{line_no}: bad row: {exc}") from exc
    return rows


def checked_request(arrival: float, inp: int, out: int, hashes: tuple[int, ...] = ()) -> Request:
    """A request as every loader builds it: finite time, counts >= 0, at least one token each."""
    if not math.isfinite(arrival):
        raise ValueError("timestamp is not finite")
    if inp < 0 or out < 0:
        raise ValueError("token counts must be >= 0")
    return Request(arrival, max(inp, 1), max(out, 1), hashes)


def write_trace(requests: Iterable[Request], path: Path, fmt: TraceFormat) -> None:
    """Write requests in one of the two public formats (for tests and derived workloads)."""
    with path.open("w", newline="") as handle:
        if fmt == "azure":
            writer = csv.writer(handle)
            writer.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"])
            for r in requests:
                stamp = datetime(2024, 5, 10) + timedelta(seconds=r.arrival_s)
                writer.writerow(
                    [stamp.strftime("%Y-%m-%d %H:%M:%S.%f") + "0", r.input_tokens, r.output_tokens]
                )
        else:
            for r in requests:
                record = {
                    "timestamp": round(r.arrival_s * 1000),
                    "input_length": r.input_tokens,
                    "output_length": r.output_tokens,
                    "hash_ids": list(r.hash_ids),
                }
                handle.write(json.dumps(record) + "\n")


def scale_rate(
    requests: Sequence[Request], factor: float, seed: int, jitter_s: float = 5.0
) -> list[Request]:
    """Multiply the arrival rate by `factor`, keeping the trace's minute-level shape.

    Each request becomes floor(factor) copies plus one more with the
    fractional probability, each shifted by up to `jitter_s`; copies get
    distinct prefix hash ids so they do not share a prompt cache.
    """
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"rate factor must be finite and > 0, got {factor}")
    rng = random.Random(seed)
    whole, frac = int(factor), factor - int(factor)
    out: list[Request] = []
    for r in requests:
        copies = whole + (1 if rng.random() < frac else 0)
        for k in range(copies):
            shift = 0.0 if (k == 0 and factor <= 1) else rng.uniform(-jitter_s, jitter_s)
            hashes = r.hash_ids if k == 0 else tuple(h + k * _HASH_STRIDE for h in r.hash_ids)
            out.append(
                Request(max(0.0, r.arrival_s + shift), r.input_tokens, r.output_tokens, hashes)
            )
    out.sort(key=lambda r: r.arrival_s)
    return out


def time_scale(requests: Sequence[Request], factor: float) -> list[Request]:
    """Stretch (factor > 1) or compress time; the rate changes by 1/factor."""
    if not math.isfinite(factor) or factor <= 0:
        raise ValueError(f"time factor must be finite and > 0, got {factor}")
    return [replace(r, arrival_s=r.arrival_s * factor) for r in requests]


def tile(requests: Sequence[Request], times: int) -> list[Request]:
    """Repeat the trace back to back `times` times."""
    if times < 1:
        raise ValueError("times must be >= 1")
    span = (requests[-1].arrival_s if requests else 0.0) + 1.0
    return [
        replace(
            r,
            arrival_s=r.arrival_s + i * span,
            hash_ids=tuple(h + i * _HASH_STRIDE for h in r.hash_ids),
        )
        for i in range(times)
        for r in requests
    ]


def duration_s(requests: Sequence[Request]) -> float:
    """Seconds from the first to the last arrival."""
    return requests[-1].arrival_s - requests[0].arrival_s if requests else 0.0
