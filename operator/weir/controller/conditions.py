"""Kubernetes-style conditions: set one, keep the transition time when nothing changed."""

from __future__ import annotations

from collections.abc import Sequence

from weir.api.status import Condition, ConditionType


def set_condition(
    conditions: Sequence[Condition],
    kind: ConditionType,
    status: bool | None,
    reason: str,
    message: str,
    now: str,
    generation: int | None = None,
) -> list[Condition]:
    """A new list with `kind` set; `lastTransitionTime` moves only when the status flips."""
    text = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.type == kind), None)
    changed = previous is None or previous.status != text
    since = now if changed or previous is None else (previous.last_transition_time or now)
    updated = Condition(
        type=kind,
        status=text,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != kind] + [updated]


def condition_status(conditions: Sequence[Condition], kind: ConditionType) -> str | None:
    found = next((c for c in conditions if c.type == kind), None)
    return None if found is None else found.status
