"""Do the models and the API server agree? Fuzzed objects through both, no cluster needed.

The API server's side is tests/controller/crdcheck (a Go program built from
the API server's own validation packages: defaulting, pruning, the OpenAPI
schema, list-map keys, CEL). Each mutated object from specfuzz goes through
it; pydantic then judges what the server would store (its defaults applied),
or the object itself when the server refuses it. Agreement means `kubectl
apply` refuses exactly what weir's models refuse:

    (cd tests/controller/crdcheck && go build -o /tmp/crdcheck .)
    .venv/bin/python tests/support/specagree.py --checker /tmp/crdcheck -n 12000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from support.specfuzz import BASES, validate  # noqa: E402
from weir.api import SpecError  # noqa: E402


def _accepts(body: dict[str, Any]) -> bool:
    try:
        validate(body)
    except SpecError:
        return False
    return True


def compare(checker: Path, bodies: list[dict[str, Any]]) -> tuple[Counter[str], list[str]]:
    """Counts of (pydantic, server) verdicts and the disagreements, described."""
    crds = sorted(str(p) for p in (REPO / "crds").glob("weir.dev_*.yaml"))
    lines = [json.dumps(b, allow_nan=False) for b in bodies]
    done = subprocess.run(
        [str(checker), "-objects", *crds],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    answers = done.stdout.splitlines()
    assert len(answers) == len(lines), (len(answers), len(lines))
    counts: Counter[str] = Counter()
    disagreements = []
    for line, answer in zip(lines, answers, strict=True):
        server = answer.startswith("ok ")
        ours = _accepts(json.loads(answer[3:])) if server else _accepts(json.loads(line))
        key = {
            (True, True): "both accept",
            (False, False): "both refuse",
            (True, False): "only pydantic accepts",
            (False, True): "only the server accepts",
        }[(ours, server)]
        counts[key] += 1
        if ours != server:
            disagreements.append(f"{key}: {answer[:300]}\n    {line[:300]}")
    return counts, disagreements


def main() -> None:
    import random

    from support.specfuzz import mutate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checker", type=Path, required=True, help="built crdcheck binary")
    parser.add_argument("-n", type=int, default=12000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    bodies = [*BASES]
    for _ in range(args.n):
        body = mutate(rnd)
        try:
            json.dumps(body, allow_nan=False)
        except ValueError:
            continue  # NaN and infinity cannot be sent to an API server
        bodies.append(body)
    counts, disagreements = compare(args.checker, bodies)
    print(f"compared {len(bodies)}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for line in disagreements[:10]:
        print(line)


if __name__ == "__main__":
    main()
