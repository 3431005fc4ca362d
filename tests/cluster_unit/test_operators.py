"""Lab commands that start an operator refuse to run beside another one.

Two operators on one cluster each apply their own plan to the same children:
a benchmark of one would measure the fight (it happened: a demo's forgotten
operator reconciled a later `weir bench operator`'s 1,000 deployments).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
import pytest

from weir_lab.bench.operator import refuse_beside_other_operators
from weir_lab.cluster.operators import is_operator_command, operator_processes


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/venv/bin/weir", "operator", "run", "--standalone"], True),
        (["python3.11", "-m", "weir", "operator", "run", "--kubeconfig=/k"], True),
        (["weir", "operator", "--help"], False),
        (["weir", "bench", "operator", "--deployments", "10"], False),
        (["kopf", "run", "operator.py"], False),
        ([], False),
    ],
)
def test_an_operator_is_recognised_however_it_was_launched(argv, expected):
    assert is_operator_command(argv) is expected


@pytest.fixture
def stand_in_operator() -> Iterator[subprocess.Popen[bytes]]:
    """A process whose command line is an operator's (it only sleeps)."""
    proc = subprocess.Popen(
        # its only work is to exist with an operator's argv until the test kills it
        [
            sys.executable,
            "-c",
            "import time; print('up', flush=True); time.sleep(120)",
            "weir",
            "operator",
            "run",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        # Its first line says the interpreter runs with that argv: a busy machine can be
        # slow to get there, and a process table read before then would not show it.
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_bench_operator_refuses_while_another_operator_runs(stand_in_operator):
    assert any(str(stand_in_operator.pid) in o.what for o in operator_processes())
    with pytest.raises(click.ClickException) as refused:
        refuse_beside_other_operators(None)
    message = refused.value.message
    assert "two operators fighting" in message
    assert str(stand_in_operator.pid) in message and "weir cluster down" in message
    stand_in_operator.kill()
    stand_in_operator.wait(timeout=10)
    assert not any(str(stand_in_operator.pid) in o.what for o in operator_processes())
