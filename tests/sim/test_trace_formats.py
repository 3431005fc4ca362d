"""Every trace format `weir whatif` reads, from files shaped the way each tool exports them.

The fixtures in data/whatif/ (see its README) follow the documented shapes of
OpenAI's Usage API page, the cookbook's CSV flattening of it, LiteLLM's
`/spend/logs` answer and its table's CSV export; the rest are written here.
Loading only: no simulation, so these run in milliseconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weir.sim.formats import load_any, parse_columns
from weir.sim.generate import generate
from weir.sim.traces import TraceError, load_trace, write_trace

DATA = Path(__file__).parent / "data" / "whatif"


def test_openai_usage_page_spreads_each_bucket_over_its_minute() -> None:
    trace = load_any(DATA / "openai_usage_completions.json")
    assert (trace.format, trace.detected) == ("openai-usage", True)
    assert trace.models == {"gpt-4o-mini-2024-07-18": 18, "gpt-4o-2024-08-06": 2}
    assert sum(r.input_tokens for r in trace.requests) == 24000 + 4001 + 12000
    assert sum(r.output_tokens for r in trace.requests) == 3000 + 801 + 1500
    arrivals = [r.arrival_s for r in trace.requests]
    # 14 requests in the first minute, none in the second, 6 in the third (the trace
    # starts at its first arrival, somewhere in the first minute)
    assert sum(a < 60 for a in arrivals) == 14 and all(a < 180 for a in arrivals)
    assert sum(a >= 60 for a in arrivals) == 6
    assert any("uniformly within the bucket" in n for n in trace.notes)
    assert any("20% of input tokens were cached" in n for n in trace.notes)
    assert load_any(DATA / "openai_usage_completions.json").requests == trace.requests


def test_openai_usage_model_filter_keeps_the_bucket_means() -> None:
    trace = load_any(DATA / "openai_usage_completions.json", model="gpt-4o-2024-08-06")
    assert sorted((r.input_tokens, r.output_tokens) for r in trace.requests) == [
        (2000, 400),
        (2001, 401),
    ]
    with pytest.raises(TraceError, match=r"no requests of model 'gpt-5'.*gpt-4o-mini"):
        load_any(DATA / "openai_usage_completions.json", model="gpt-5")


def test_openai_usage_as_the_cookbook_flattens_it_to_csv() -> None:
    trace = load_any(DATA / "openai_usage_cookbook.csv")
    assert trace.format == "openai-usage" and len(trace.requests) == 19
    assert sum(r.input_tokens for r in trace.requests) == 38000
    assert any("3600 s (2)" in n for n in trace.notes)


def test_openai_usage_pages_as_json_lines(tmp_path: Path) -> None:
    page = json.loads((DATA / "openai_usage_completions.json").read_text())
    lines = tmp_path / "pages.jsonl"
    first, rest = dict(page, data=page["data"][:1]), dict(page, data=page["data"][1:])
    lines.write_text(json.dumps(first) + "\n" + json.dumps(rest) + "\n")
    assert len(load_any(lines).requests) == 20


def test_litellm_spend_logs_leave_out_what_never_reached_a_model() -> None:
    trace = load_any(DATA / "litellm_spend_logs.json")
    assert (trace.format, trace.detected) == ("litellm-spend", True)
    assert [r.input_tokens for r in trace.requests] == [1210, 580, 800]
    assert [r.output_tokens for r in trace.requests] == [132, 60, 100]
    assert [round(r.arrival_s, 3) for r in trace.requests] == [0.0, 1.738, 88.488]
    assert trace.models == {"llama-3.3-70b": 2, "gpt-4o-mini": 1}
    left = next(n for n in trace.notes if n.startswith("left out"))
    assert "calls that generate no text, by call_type (1)" in left
    assert "LiteLLM cache hits, where no model ran (1)" in left and "failed calls (1)" in left


def test_litellm_ui_pages_and_table_csv(tmp_path: Path) -> None:
    rows = json.loads((DATA / "litellm_spend_logs.json").read_text())
    page = tmp_path / "ui.json"
    page.write_text(json.dumps({"data": rows, "total": 6, "page": 1, "total_pages": 1}))
    assert load_any(page).requests == load_any(DATA / "litellm_spend_logs.json").requests
    table = load_any(DATA / "litellm_spendlogs_table.csv")
    assert table.format == "litellm-spend"
    assert [(round(r.arrival_s, 3), r.input_tokens) for r in table.requests] == [
        (0.0, 1210),
        (1.738, 580),
    ]


@pytest.mark.parametrize(
    ("first", "second", "unit"),
    [
        ("1715342400", "1715342401.5", "auto"),
        ("1715342400000", "1715342401500", "auto"),
        ("1715342400000000", "1715342401500000", "auto"),
        ("2024-05-10T12:00:00Z", "2024-05-10T14:00:01.5+02:00", "auto"),
        ("2024-05-10 12:00:00", "2024-05-10 12:00:01.500", "auto"),
        ("0", "1500", "ms"),
    ],
)
def test_csv_column_map_and_timestamps(tmp_path: Path, first: str, second: str, unit: str) -> None:
    path = tmp_path / "gateway.csv"
    path.write_text(f"when,in_tok,out_tok,llm\n{second},20,6,b\n{first},10,5,a\n")
    columns = parse_columns("timestamp=when, input=in_tok,output=out_tok,model=llm")
    trace = load_any(path, "csv", columns, unit)  # type: ignore[arg-type]
    assert [(r.arrival_s, r.input_tokens, r.output_tokens) for r in trace.requests] == [
        (0.0, 10, 5),
        (1.5, 20, 6),
    ]
    assert trace.models == {"a": 1, "b": 1} and "timestamp=when" in trace.notes[0]


def test_csv_common_column_names_need_no_map(tmp_path: Path) -> None:
    path = tmp_path / "logs.csv"
    path.write_text("created_at,Prompt Tokens,completion_tokens\n1715342400,10,5\n1715342460,7,3\n")
    trace = load_any(path)
    assert (trace.format, [r.arrival_s for r in trace.requests]) == ("csv", [0.0, 60.0])
    assert "input=Prompt Tokens" in trace.notes[0]


def test_column_map_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="unknown key 'prompt'"):
        parse_columns("timestamp=ts,prompt=x")
    with pytest.raises(TraceError, match="not KEY=COLUMN"):
        parse_columns("timestamp")
    path = tmp_path / "t.csv"
    path.write_text("ts,a,b\n1,2,3\n")
    with pytest.raises(TraceError, match=r"input=tokens, which the header \['ts', 'a', 'b'\]"):
        load_any(path, "csv", {"input": "tokens"})
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,input,output\n1,2,3\nyesterday,2,3\n")
    with pytest.raises(TraceError, match=r"bad\.csv:3: bad row"):
        load_any(bad, "csv")
    with pytest.raises(TraceError, match="apply to csv traces; this one is litellm-spend"):
        load_any(DATA / "litellm_spend_logs.json", columns={"input": "x"})


def test_detection_and_its_errors(tmp_path: Path) -> None:
    requests = generate("steady", 60.0, 1.0, seed=2)
    for fmt in ("azure", "mooncake"):
        path = tmp_path / f"t.{fmt}"
        write_trace(requests, path, fmt)  # type: ignore[arg-type]
        trace = load_any(path)
        assert trace.format == fmt and trace.requests == load_trace(path, fmt)  # type: ignore[arg-type]
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(TraceError, match=r"cannot tell the format of .*odd\.csv: its header is"):
        load_any(odd)
    blob = tmp_path / "odd.json"
    blob.write_text('{"foo": 1, "bar": 2}\n')
    with pytest.raises(TraceError, match=r"odd\.json.* has keys \['bar', 'foo'\]"):
        load_any(blob)
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    with pytest.raises(TraceError, match="empty trace"):
        load_any(empty)
    binary = tmp_path / "trace.parquet"
    binary.write_bytes(b"PAR1\xff\xfe\x00\x01")
    with pytest.raises(TraceError, match="not a text file"):
        load_any(binary)


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    row = json.loads((DATA / "litellm_spend_logs.json").read_text())[0]
    lines = tmp_path / "spend.jsonl"
    lines.write_text(json.dumps(row) + "\n" + '{"startTime": "2025-03-20T14:02:12Z",\n')
    with pytest.raises(TraceError, match=r"spend\.jsonl:2: not JSON"):
        load_any(lines)
    document = tmp_path / "page.json"
    document.write_text('{\n  "object": "page",\n  "data": [\n    {"start_time": 1,,}\n  ]\n}\n')
    with pytest.raises(TraceError, match=r"page\.json:4: not JSON"):
        load_any(document, "openai-usage")
