"""Reading the cells of the trace files users have: stamps, counts, CSV rows, JSON records.

Every loader of weir.sim.formats and weir.sim.exports reads the same kinds
of values (ISO 8601 or epoch stamps in an unknown unit, counts that may be
empty, CSV rows and JSON that is one document or JSON lines, nested in
pages), so each is read once, here, with errors that say what was seen.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from weir.sim.traces import Request, TraceError, parse_timestamp

TimeUnit = Literal["auto", "s", "ms", "us", "ns"]
TIME_UNITS: tuple[TimeUnit, ...] = ("auto", "s", "ms", "us", "ns")
# Epoch numbers without a unit, by magnitude: 1e11 s is the year 5138 and 1e11 ms
# is 1973, so any stamp of this century is read in the right unit.
_AUTO_UNITS = ((1e17, 1e-9), (1e14, 1e-6), (1e11, 1e-3))
_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass
class Loaded:
    """What one loader read: each request with its model ("" when the file names none)."""

    rows: list[tuple[Request, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_instant(value: object, unit: TimeUnit = "auto") -> float:
    """Seconds since the epoch of an ISO 8601 stamp or an epoch number in `unit`."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a timestamp: {value!r}")
    number: float | None = float(value) if isinstance(value, int | float) else None
    if number is None:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            return parse_timestamp(text)
    if not math.isfinite(number):
        raise ValueError(f"timestamp is not finite: {value!r}")
    if unit != "auto":
        return number * _SCALE[unit]
    for floor, scale in _AUTO_UNITS:
        if abs(number) >= floor:
            return number * scale
    return number


def count(value: object, name: str) -> int:
    """A token or request count from a CSV cell or a JSON value (empty and null are 0)."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise ValueError(f"{name}: {value!r} is not a count")
    number = float(value) if isinstance(value, int | float) else float(str(value).strip())
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{name}: {value!r} is not a whole number")
    return int(number)


def csv_header(path: Path) -> list[str]:
    """The first row of a CSV file, each name stripped."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [h.strip() for h in next(csv.reader(handle), [])]


def csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows after the header, by line number, as header name -> cell; blank rows skipped."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield reader.line_num, dict(zip(header, row, strict=False))
        except csv.Error as exc:
            raise TraceError(f"{path}:{reader.line_num}: not CSV: {exc}") from exc


def json_records(path: Path) -> Iterator[tuple[str, Any]]:
    """Top-level JSON values with where they are: JSON lines, or one document.

    JSON lines stream (detection reads only the first); a first line that is
    not JSON on its own starts one document, read whole.
    """
    first = True
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                if not first:
                    raise TraceError(f"{path}:{number}: not JSON: {exc.msg}") from exc
                break
            first = False
            yield f"{path}:{number}", value
        else:
            return
    try:
        yield f"{path}", json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from exc


def flatten(where: str, value: Any, is_item: Callable[[Any], bool]) -> Iterator[tuple[str, Any]]:
    """The items in lists and in `{"data": [...]}` pages, however the export nested them."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from flatten(f"{where} item {i}", item, is_item)
    elif isinstance(value, dict) and not is_item(value) and isinstance(value.get("data"), list):
        yield from flatten(f"{where} data", value["data"], is_item)
    else:
        yield where, value
