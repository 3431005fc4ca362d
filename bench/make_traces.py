"""Write generated traces (both public formats) for benchmarking beyond the shared two.

The targets must hold "on any other trace in the same formats"; these are
the generated shapes the planner was tested on (weir.sim.generate), written
outside the repository. Run from the repository root:

    .venv/bin/python bench/make_traces.py /tmp/weir-traces [duration_s, default 3600]
"""

from __future__ import annotations

import sys
from pathlib import Path

from weir.sim.generate import generate
from weir.sim.traces import TraceFormat, write_trace

SHAPES: tuple[tuple[str, TraceFormat], ...] = (
    ("steady", "azure"),
    ("bursty", "azure"),
    ("daily", "azure"),
    ("long_context", "mooncake"),
    ("agentic", "mooncake"),
)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/weir-traces")
    duration = float(sys.argv[2]) if len(sys.argv) > 2 else 3600.0
    out.mkdir(parents=True, exist_ok=True)
    for index, (pattern, fmt) in enumerate(SHAPES):
        requests = generate(pattern, duration, 5.0, seed=100 + index)  # type: ignore[arg-type]
        suffix = "csv" if fmt == "azure" else "jsonl"
        path = out / f"{pattern}.{suffix}"
        write_trace(requests, path, fmt)
        print(f"{path}: {len(requests)} requests ({fmt})")


if __name__ == "__main__":
    main()
