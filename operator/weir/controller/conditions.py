"""Kubernetes-style conditions: set one, keep the transition time when nothing changed."""

from __future__ import annotations

from typing import Any


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    status: bool | None,
    reason: str,
    message: str,
    now: str,
    generation: int | None = None,
) -> list[dict[str, Any]]:
    """A new list with `kind` set; `lastTransitionTime` moves only when the status flips."""
    text = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.get("type") == kind), None)
    changed = previous is None or previous.get("status") != text
    updated: dict[str, Any] = {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": (
            now if changed or previous is None else previous.get("lastTransitionTime", now)
        ),
    }
    if generation is not None:
        updated["observedGeneration"] = generation
    return [c for c in conditions if c.get("type") != kind] + [updated]


def condition_status(conditions: list[dict[str, Any]], kind: str) -> str | None:
    found = next((c for c in conditions if c.get("type") == kind), None)
    return None if found is None else str(found.get("status"))
