"""The product's wheel carries the product only: no lab module, no test code.

Built from a copy of the project's sources (a stale `build/` folder could
otherwise leak old modules into the wheel), with the same setuptools the
environment has, so it is the wheel a user's `pip install weir` would get.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _build_wheel(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "operator",
        src / "operator",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"),
    )
    out = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("weir-*.whl")
    return wheel


def test_the_wheel_holds_the_product_and_no_lab_module(tmp_path: Path) -> None:
    wheel = zipfile.ZipFile(_build_wheel(tmp_path))
    names = wheel.namelist()
    modules = [n for n in names if n.endswith(".py")]
    tops = {n.split("/", 1)[0] for n in modules}
    assert tops == {"weir"}, f"top-level packages in the wheel: {sorted(tops)}"
    lab_words = ("cluster/", "closedloop/", "demo.py", "standin", "loadgen", "bench_targets")
    leaked = [n for n in modules if any(word in n for word in lab_words)]
    assert not leaked, f"lab modules in the product wheel: {leaked}"
    for needed in ("weir/controller/loop.py", "weir/router/proxy.py", "weir/planner/optimise.py"):
        assert needed in names
    assert "weir/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = wheel.read(entry_points).decode()
    assert "weir_lab" not in text, text
