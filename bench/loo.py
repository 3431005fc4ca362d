"""Leave-one-out error of the capacity model on each engine profile's own points.

Each point is predicted from a fit to the others (closed loop at its
concurrency and shape); the mean absolute relative error is printed for all
points and for the measured (published) ones alone, since derived points come
from the same model family and flatter it. Run from the repository root:

    .venv/bin/python bench/loo.py [engines/profiles]
"""

from __future__ import annotations

import sys
from pathlib import Path

from weir.api import load_profiles
from weir.planner.capacity import leave_one_out


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "engines/profiles")
    print(f"{'profile':32s} {'points':>6s} {'TTFT':>7s} {'ITL':>7s} {'tok/s':>7s}  measured only")
    for name, profile in load_profiles(folder).items():
        every = leave_one_out(profile)
        measured = leave_one_out(profile, measured_only=True)
        tail = (
            f"{measured.points} pts: TTFT {measured.ttft_error:.1%}, ITL {measured.itl_error:.1%}, "
            f"tok/s {measured.throughput_error:.1%}"
            if measured.points
            else "none published"
        )
        print(
            f"{name:32s} {every.points:6d} {every.ttft_error:7.1%} {every.itl_error:7.1%} "
            f"{every.throughput_error:7.1%}  {tail}"
        )


if __name__ == "__main__":
    main()
