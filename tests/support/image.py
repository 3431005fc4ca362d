"""weir's image for the tests that run it: built as `make image` builds it.

e2e/image/build.sh caches by content, so the image is built once per change
and every later call only prints its reference.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def built_image() -> str:
    """The image reference `e2e/image/build.sh` prints (building it when out of date)."""
    built = subprocess.run(
        [str(ROOT / "e2e" / "image" / "build.sh")],
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
        timeout=1700,
        check=True,
    )
    return built.stdout.strip().splitlines()[-1]
