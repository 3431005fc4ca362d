"""Start, find and stop the cluster's processes.

Every process is started in its own session with its output in a log file,
and recorded in `<state>/pids/<name>.json`. Each one's command line names the
state folder (data dir, cert dir, kubeconfig, config file), so after a crash
that lost the records, `find_owned` still finds every leftover by scanning
the process table: `down` and a recovering `up` never miss one, and never
touch a process that is not ours.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from weir_lab.cluster.errors import ClusterError


@dataclass(frozen=True)
class Managed:
    """A process the cluster started."""

    name: str
    pid: int
    create_time: float
    log: Path


def _pid_dir(state_dir: Path) -> Path:
    return state_dir / "pids"


def start(
    name: str, argv: Sequence[str], state_dir: Path, env: dict[str, str] | None = None
) -> Managed:
    """Start `argv` detached, log to `<state>/logs/<name>.log`, and record it."""
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _pid_dir(state_dir).mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
                cwd=state_dir,
            )
        except OSError as exc:
            raise ClusterError(f"cannot start {name} ({argv[0]}): {exc.strerror}") from exc
    managed = Managed(name, proc.pid, psutil.Process(proc.pid).create_time(), log)
    record = {
        "pid": managed.pid,
        "create_time": managed.create_time,
        "log": str(log),
        "argv": list(argv),
    }
    (_pid_dir(state_dir) / f"{name}.json").write_text(json.dumps(record))
    return managed


def recorded(state_dir: Path) -> Iterator[Managed]:
    """The processes recorded by `start` that are still the same running process."""
    directory = _pid_dir(state_dir)
    if not directory.is_dir():
        return
    for path in sorted(directory.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            proc = psutil.Process(int(record["pid"]))
            same = abs(proc.create_time() - float(record["create_time"])) < 1e-3
        except (OSError, ValueError, KeyError, psutil.Error):
            continue
        if same and proc.status() != psutil.STATUS_ZOMBIE:
            yield Managed(path.stem, proc.pid, proc.create_time(), Path(record["log"]))


def alive(managed: Managed) -> bool:
    try:
        proc = psutil.Process(managed.pid)
        return abs(proc.create_time() - managed.create_time) < 1e-3 and (
            proc.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


def find_owned(state_dir: Path) -> list[psutil.Process]:
    """Every running process whose command line names the state folder."""
    marker = str(state_dir.resolve())
    me = os.getpid()
    found = []
    psutil.process_iter.cache_clear()  # no stale Process for a reused PID (see operators.py)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.pid != me and any(_names_dir(arg, marker) for arg in cmdline):
            found.append(proc)
    return found


def _names_dir(arg: str, marker: str) -> bool:
    """Whether a command-line argument is the folder or a path inside it (not a sibling)."""
    return arg.endswith(marker) or f"{marker}{os.sep}" in arg


def stop_all(state_dir: Path, grace_s: float = 10.0) -> list[str]:
    """Terminate every process of ours (recorded or found), then kill what stays."""
    procs = {p.pid: p for p in find_owned(state_dir)}
    for managed in recorded(state_dir):
        try:
            procs.setdefault(managed.pid, psutil.Process(managed.pid))
        except psutil.Error:
            continue
    stopped = []
    for proc in procs.values():
        try:
            stopped.append(f"{proc.name()}[{proc.pid}]")
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
    _, remaining = psutil.wait_procs(list(procs.values()), timeout=grace_s)
    for proc in remaining:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(remaining, timeout=grace_s)
    directory = _pid_dir(state_dir)
    if directory.is_dir():
        for path in directory.glob("*.json"):
            path.unlink()
    return stopped


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:`port` (or on every address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def port_holder(port: int) -> psutil.Process | None:
    """The process listening on `port`, when the process table tells."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                return None
            try:
                return psutil.Process(conn.pid)
            except psutil.NoSuchProcess:
                return None
    return None


def stop_one(state_dir: Path, name: str, grace_s: float = 10.0) -> None:
    """Stop one recorded component (tests use it to take Prometheus away); its record stays."""
    for managed in recorded(state_dir):
        if managed.name == name:
            proc = psutil.Process(managed.pid)
            proc.terminate()
            try:
                proc.wait(timeout=grace_s)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=grace_s)


def restart_one(state_dir: Path, name: str) -> Managed:
    """Start a stopped component again with the command line it was first started with."""
    record = json.loads((_pid_dir(state_dir) / f"{name}.json").read_text())
    return start(name, record["argv"], state_dir)
