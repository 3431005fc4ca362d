"""`weir demo` (the README's first command, after setup) on the session's cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.operator import delete_and_wait
from weir.cluster import processes
from weir.demo import OPERATOR

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_the_example_and_lists_the_pools(cluster):
    try:
        done = subprocess.run(
            [sys.executable, "-m", "weir", "demo"],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        idep = next(
            i for i, line in enumerate(lines) if line.startswith("NAME") and "READY" in line
        )
        assert lines[idep + 1].split()[:3] == ["llama-8b", "1", "1"]  # ready, on-demand
        nodes = [line.split() for line in lines if line.startswith("h100-spot-")]
        assert nodes and all(n[-3:] == ["spot", "8", "h100-spot"] for n in nodes)
    finally:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "weir",
                "cluster",
                "kubectl",
                "--",
                "delete",
                "-f",
                str(REPO / "examples" / "llama-3.1-8b.yaml"),
                "--wait=false",
            ],
            capture_output=True,
            check=False,
        )
        delete_and_wait(cluster, "default", "llama-8b")
        processes.stop_one(cluster.settings.state_dir, OPERATOR)
