"""`weir doctor --json` as users run it (a subprocess) against the test cluster, read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DoctorRun:
    """What one run of the doctor said: its exit status and its JSON report."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Everything it printed, for an assertion's message."""
        return self.stdout + self.stderr

    @property
    def findings(self) -> list[dict[str, Any]]:
        """The report's findings (each with check, subject, ok and message)."""
        findings: list[dict[str, Any]] = json.loads(self.stdout)["findings"]
        return findings


def run_doctor(kubeconfig: Path, prometheus_url: str, timeout_s: float = 120.0) -> DoctorRun:
    """`weir doctor --json` with the operator's kubeconfig and this Prometheus (any exit)."""
    done = subprocess.run(
        [sys.executable, "-m", "weir", "doctor", "--json", f"--prometheus={prometheus_url}"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "WEIR_OPERATOR_KUBECONFIG": str(kubeconfig)},
        check=False,
    )
    return DoctorRun(done.returncode, done.stdout, done.stderr)
