"""Trace loaders and reshaping: both formats, any size, bad rows named by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from weir.sim.generate import PATTERNS, generate
from weir.sim.traces import TraceError, load_trace, scale_rate, tile, time_scale, write_trace


@pytest.mark.parametrize("fmt", ["azure", "mooncake"])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_generated_traces_round_trip(tmp_path: Path, fmt: str, pattern: str) -> None:
    requests = generate(pattern, 300.0, 4.0, seed=3)  # type: ignore[arg-type]
    path = tmp_path / f"t.{fmt}"
    write_trace(requests, path, fmt)  # type: ignore[arg-type]
    loaded = load_trace(path)
    assert len(loaded) == len(requests)
    assert [r.output_tokens for r in loaded] == [r.output_tokens for r in requests]
    assert loaded[0].arrival_s == 0.0
    assert abs(loaded[-1].arrival_s - (requests[-1].arrival_s - requests[0].arrival_s)) < 0.01
    if fmt == "mooncake":
        assert [r.hash_ids for r in loaded] == [r.hash_ids for r in requests]


def test_mixed_timestamp_formats(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2024-05-10 00:00:00.009930+00:00,100,10\n"
        "2024-05-10 00:00:01,200,20\n"
        "2023-11-16 18:15:46.6805900,300,30\n"
    )
    loaded = load_trace(path, "azure")
    assert [r.input_tokens for r in loaded] == [300, 100, 200]


def test_bad_rows_name_the_line(tmp_path: Path) -> None:
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:00,1,2\nnot-a-time,3,4\n"
    )
    with pytest.raises(TraceError, match=r"bad\.csv:3"):
        load_trace(csv_path)
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1}\n{"timestamp": 1}\n')
    with pytest.raises(TraceError, match=r"bad\.jsonl:2"):
        load_trace(jsonl)
    header = tmp_path / "header.csv"
    header.write_text("a,b,c\n")
    with pytest.raises(TraceError, match="expected header"):
        load_trace(header, "azure")
    with pytest.raises(TraceError, match="no such trace"):
        load_trace(tmp_path / "missing.csv")


def test_reshaping() -> None:
    base = generate("steady", 600.0, 5.0, seed=1)
    doubled = scale_rate(base, 2.0, seed=0)
    assert len(doubled) == 2 * len(base)
    assert {h for r in doubled for h in r.hash_ids} >= {h for r in base for h in r.hash_ids}
    halved = scale_rate(base, 0.5, seed=0)
    assert 0.4 * len(base) < len(halved) < 0.6 * len(base)
    slow = time_scale(base, 2.0)
    assert slow[-1].arrival_s == pytest.approx(2 * base[-1].arrival_s)
    assert len(tile(base, 3)) == 3 * len(base)
    with pytest.raises(ValueError, match="rate factor"):
        scale_rate(base, float("nan"), seed=0)
