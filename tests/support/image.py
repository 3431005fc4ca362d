"""weir's image for the tests that run it: built as `make image` builds it.

e2e/image/build.sh caches by content, so the image is built once per change
and every later call only prints its reference.
"""

from __future__ import annotations

from weir_lab.cluster import release
from weir_lab.cluster.settings import ClusterSettings


def built_image() -> str:
    """The image reference `e2e/image/build.sh` prints (building it when out of date)."""
    return release.build_image(ClusterSettings())
