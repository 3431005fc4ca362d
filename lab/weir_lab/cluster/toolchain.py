"""The cluster's binaries (control plane, helm, Prometheus): where they are cached,
and building them when missing.

Building is delegated to `e2e/toolchain/build.sh` (the wrapper Go modules live
beside it), so `make`, CI and `weir cluster up` share one recipe and one cache
keyed by component version. This module only runs it and checks the result,
before anything is started: a failed build never leaves a half-started cluster.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from weir_lab.cluster.errors import ToolchainError

_BINARIES = {
    "etcd": ("etcd",),
    "kwok": ("kwok",),
    "k8s": ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
    "helm": ("helm",),
    "prometheus": ("prometheus",),
}


@dataclass(frozen=True)
class Toolchain:
    """Absolute paths of every binary the cluster runs."""

    etcd: Path
    kwok: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    helm: Path
    prometheus: Path


def _run_script(e2e_dir: Path, *args: str) -> dict[str, Path]:
    script = e2e_dir / "toolchain" / "build.sh"
    if not script.is_file():
        raise ToolchainError(f"{script} is missing: run weir from a checkout of the project")
    proc = subprocess.run(
        ["bash", str(script), *args],
        stdout=subprocess.PIPE,
        stderr=None,
        text=True,
        check=False,
    )
    if proc.returncode == 3:
        raise ToolchainError("Go is not installed: install Go >= 1.24 and run again")
    if proc.returncode != 0:
        raise ToolchainError(
            f"building the control plane failed (exit {proc.returncode}, output above); "
            "nothing was started"
        )
    dirs = {}
    for line in proc.stdout.splitlines():
        name, sep, path = line.partition("=")
        if sep:
            dirs[name.strip()] = Path(path.strip())
    return dirs


def _complete(dirs: dict[str, Path]) -> bool:
    return all((dirs.get(name, Path("/nonexistent")) / ".complete").is_file() for name in _BINARIES)


def ensure(e2e_dir: Path, build: bool = True) -> Toolchain:
    """Paths of the cached binaries, building the missing ones first when `build`."""
    dirs = _run_script(e2e_dir, "paths")
    if not _complete(dirs):
        if not build:
            missing = [name for name in _BINARIES if not (dirs[name] / ".complete").is_file()]
            raise ToolchainError(f"not built yet: {', '.join(missing)}; run `weir cluster up`")
        dirs = _run_script(e2e_dir)
    for group, names in _BINARIES.items():
        for name in names:
            if not (dirs[group] / name).is_file():
                raise ToolchainError(f"{dirs[group] / name} is missing after the build")
    return Toolchain(
        etcd=dirs["etcd"] / "etcd",
        kwok=dirs["kwok"] / "kwok",
        kube_apiserver=dirs["k8s"] / "kube-apiserver",
        kube_controller_manager=dirs["k8s"] / "kube-controller-manager",
        kube_scheduler=dirs["k8s"] / "kube-scheduler",
        kubectl=dirs["k8s"] / "kubectl",
        helm=dirs["helm"] / "helm",
        prometheus=dirs["prometheus"] / "prometheus",
    )
