"""`weir bench router` at toy scale: the code path works and writes its summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from weir_lab.bench.router import bench_router


def test_bench_router_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the bench's router runs open, without a metrics listener (the variables its flags read)
    monkeypatch.setenv("WEIR_ROUTER_ALLOW_ANONYMOUS", "1")
    monkeypatch.setenv("WEIR_ROUTER_METRICS_PORT", "0")
    result = CliRunner().invoke(
        bench_router,
        [
            "--out",
            str(tmp_path),
            "--duration",
            "0.5",
            "--warmup",
            "0.2",
            "--concurrency",
            "2",
            "--delay-ms",
            "0",
            "--targets",
            "direct,weir",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    runs = {r["target"]: r for r in summary["runs"]}
    assert set(runs) == {"direct", "weir"}
    assert runs["weir"]["errors"] == 0 and runs["weir"]["requests_per_s"] > 0
    assert runs["weir"]["added_ttft_p50_ms"] is not None
    assert runs["weir"]["proxy_cpu_ms_per_request"] > 0 and runs["weir"]["rss_mb"] > 0
