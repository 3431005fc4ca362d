"""The trace formats users have: detection, the CSV column map, one entry point.

An SRE's traffic rarely comes as Azure's CSV or Mooncake's JSON lines. It is
a CSV of their own gateway's logs, with their own column names and epoch
stamps; an OpenAI usage export; or LiteLLM's spend logs. `load_any` reads
each into the simulator's requests, says which format it read (and whether
it guessed), and keeps the notes a report must carry: which columns it used,
what it left out, and what the file could not say (an aggregated export has
no per-request arrival times). The two public formats keep their loaders in
weir.sim.traces; the exports' loaders are in weir.sim.exports.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from weir.sim.exports import csv_format, json_format, load_litellm_spend, load_openai_usage
from weir.sim.readers import (
    Loaded,
    TimeUnit,
    count,
    csv_header,
    csv_rows,
    json_records,
    parse_instant,
)
from weir.sim.traces import Request, TraceError, checked_request, load_trace

TraceFormat = Literal["azure", "mooncake", "csv", "openai-usage", "litellm-spend"]
FORMATS: tuple[TraceFormat, ...] = ("azure", "mooncake", "csv", "openai-usage", "litellm-spend")
COLUMN_KEYS = ("timestamp", "input", "output", "model")
COLUMNS_EXAMPLE = "--columns timestamp=ts,input=prompt_tokens,output=completion_tokens"
_REQUIRED = ("timestamp", "input", "output")
_AZURE_HEADER = ["TIMESTAMP", "ContextTokens", "GeneratedTokens"]
# Column names tried in order when the column map does not name a key, compared
# lower-case without punctuation or spaces ("Prompt Tokens" is prompttokens).
_ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "time", "ts", "datetime", "starttime", "createdat", "created"),
    "input": (
        "inputtokens",
        "prompttokens",
        "input",
        "prompt",
        "contexttokens",
        "inputlength",
        "tokensin",
    ),
    "output": (
        "outputtokens",
        "completiontokens",
        "output",
        "completion",
        "generatedtokens",
        "outputlength",
        "tokensout",
    ),
    "model": ("model", "modelname", "modelid"),
}


@dataclass(frozen=True)
class LoadedTrace:
    """A trace in the simulator's terms, with how it was read."""

    path: Path
    format: TraceFormat
    detected: bool
    requests: list[Request]
    models: dict[str, int]
    notes: tuple[str, ...]

    def headline(self) -> str:
        """What was read, in one line."""
        how = "detected" if self.detected else "as given"
        models = f", models {', '.join(self.models)}" if self.models else ""
        return (
            f"{self.path.name} read as {self.format} ({how}): {len(self.requests):,} requests "
            f"over {self.requests[-1].arrival_s / 60:.1f} min{models}"
        )

    def describe(self) -> dict[str, object]:
        """For summary.json: the file, its format and what reading it assumed."""
        return {
            "file": str(self.path),
            "format": self.format,
            "format_detected": self.detected,
            "requests": len(self.requests),
            "duration_s": round(self.requests[-1].arrival_s, 1),
            "models": dict(self.models),
            "notes": list(self.notes),
        }


def parse_columns(text: str) -> dict[str, str]:
    """`timestamp=ts,input=prompt_tokens,output=completion_tokens` as a mapping."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, column = (s.strip() for s in part.partition("="))
        if not sep or not column:
            raise TraceError(f"column map: {part!r} is not KEY=COLUMN (e.g. {COLUMNS_EXAMPLE})")
        if key not in COLUMN_KEYS:
            raise TraceError(f"column map: unknown key {key!r}; keys: {', '.join(COLUMN_KEYS)}")
        out[key] = column
    return out


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def resolve_columns(path: Path, header: list[str], columns: Mapping[str, str]) -> dict[str, str]:
    """Which header names hold the timestamp, input, output (and model) of a request."""
    out: dict[str, str] = {}
    by_norm = {_norm(h): h for h in reversed(header)}
    for key in COLUMN_KEYS:
        if key in columns:
            if columns[key] not in header:
                raise TraceError(
                    f"{path}:1: the column map names {key}={columns[key]}, which the header "
                    f"{header} does not have"
                )
            out[key] = columns[key]
            continue
        found = next((by_norm[a] for a in _ALIASES[key] if a in by_norm), None)
        if found is not None:
            out[key] = found
        elif key in _REQUIRED:
            raise TraceError(
                f"{path}:1: no {key} column in the header {header} (looked for "
                f"{', '.join(_ALIASES[key])}); name it: {COLUMNS_EXAMPLE}"
            )
    return out


def _load_csv(path: Path, columns: Mapping[str, str], unit: TimeUnit) -> Loaded:
    names = resolve_columns(path, csv_header(path), columns)
    loaded = Loaded()
    for line, row in csv_rows(path):
        try:
            request = checked_request(
                parse_instant(row.get(names["timestamp"]), unit),
                count(row.get(names["input"]), names["input"]),
                count(row.get(names["output"]), names["output"]),
            )
        except ValueError as exc:
            raise TraceError(f"{path}:{line}: bad row: {exc}") from exc
        loaded.rows.append((request, row.get(names.get("model", ""), "") or ""))
    used = ", ".join(f"{k}={v}" for k, v in names.items())
    how = "ISO 8601, or epoch numbers in s, ms, us or ns by magnitude" if unit == "auto" else unit
    loaded.notes.append(f"csv columns {used}; timestamps read as {how}; naive stamps are UTC")
    return loaded


def detect(path: Path, columns: Mapping[str, str] | None = None) -> TraceFormat:
    """The format of a trace file, from its first JSON record or its CSV header."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            start = handle.read(4096).lstrip()
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: not a text file (a CSV or JSON trace): {exc.reason}") from exc
    if not start:
        raise TraceError(f"{path}: empty trace")
    if start[0] in "[{":
        where, first = next(json_records(path))
        found = json_format(first)
        if found is None:
            keys = sorted(first) if isinstance(first, dict) else type(first).__name__
            raise TraceError(
                f"cannot tell the format of {path}: its first JSON record ({where}) has keys "
                f"{keys}; expected Mooncake's timestamp/input_length/output_length, an OpenAI "
                "usage page or bucket (start_time, end_time, results) or LiteLLM spend logs "
                "(startTime, prompt_tokens, completion_tokens); or pass --format"
            )
        return found
    header = csv_header(path)
    if header[:3] == _AZURE_HEADER:
        return "azure"
    found = csv_format(header)
    if found is not None:
        return found
    try:
        resolve_columns(path, header, columns or {})
    except TraceError as exc:
        raise TraceError(
            f"cannot tell the format of {path}: its header is {header}; expected Azure's "
            f"{','.join(_AZURE_HEADER)}, LiteLLM's startTime/prompt_tokens/completion_tokens, "
            "an OpenAI usage export's start_time/end_time/input_tokens/output_tokens/"
            f"num_model_requests, or a CSV whose columns a column map names ({COLUMNS_EXAMPLE})"
        ) from exc
    return "csv"


def load_any(
    path: Path,
    fmt: TraceFormat | None = None,
    columns: Mapping[str, str] | None = None,
    time_unit: TimeUnit = "auto",
    model: str | None = None,
) -> LoadedTrace:
    """Read a trace in any listed format, sorted by arrival, starting at 0 s.

    `model` keeps the requests of that model only (in the formats that name
    one); `columns` and `time_unit` apply to csv traces (the others define
    their own).
    """
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    chosen = fmt or detect(path, columns)
    if chosen != "csv" and (columns or time_unit != "auto"):
        raise TraceError(
            f"{path}: a column map and a time unit apply to csv traces; this one is {chosen}"
        )
    loaders: dict[TraceFormat, Callable[[], Loaded]] = {
        "azure": lambda: Loaded([(r, "") for r in load_trace(path, "azure")]),
        "mooncake": lambda: Loaded([(r, "") for r in load_trace(path, "mooncake")]),
        "csv": lambda: _load_csv(path, columns or {}, time_unit),
        "openai-usage": lambda: load_openai_usage(path),
        "litellm-spend": lambda: load_litellm_spend(path),
    }
    loaded = loaders[chosen]()
    rows = loaded.rows
    if model is not None:
        seen = Counter(m for _, m in rows if m)
        rows = [(r, m) for r, m in rows if m == model]
        if not rows:
            named = ", ".join(f"{m} ({n})" for m, n in seen.most_common()) or "none named"
            raise TraceError(f"{path}: no requests of model {model!r}; its models: {named}")
        loaded.notes.append(f"kept the {len(rows)} requests of model {model}")
    if not rows:
        raise TraceError(f"{path}: no requests")
    ordered = sorted((r for r, _ in rows), key=lambda r: r.arrival_s)
    start = ordered[0].arrival_s
    requests = [
        Request(r.arrival_s - start, r.input_tokens, r.output_tokens, r.hash_ids) for r in ordered
    ]
    models = dict(Counter(m for _, m in rows if m).most_common())
    return LoadedTrace(path, chosen, fmt is None, requests, models, tuple(loaded.notes))
