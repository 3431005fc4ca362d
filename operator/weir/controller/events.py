"""Which steps earn an event: changes of plan, and each decision not to act.

A person reading `kubectl describe` should see why the fleet changed, and
why it did not when they expected it to: a held plan, no plan at all, a
refused apply, an invalid reference. Events are posted on a change only (the
previous status is the memory), so a deployment stuck for an hour posts one
warning, not 240.
"""

from __future__ import annotations

from typing import Any

from weir.api.status import InferenceDeploymentStatus
from weir.controller.control import ControlDecision, NoPlan
from weir.controller.port import ClusterPort
from weir.controller.reconcile import Outcome


def _message(status: InferenceDeploymentStatus, kind: str) -> str | None:
    found = next((c for c in status.conditions if c.type == kind), None)
    return None if found is None else f"{found.status}:{found.message}"


def post_events(
    cluster: ClusterPort,
    body: dict[str, Any],
    before: InferenceDeploymentStatus,
    status: InferenceDeploymentStatus,
    decision: ControlDecision | NoPlan,
    outcome: Outcome,
) -> None:
    """Events on `body` for what changed between the stored status (`before`, as the
    step parsed it) and the one just written."""
    if outcome.problem and _message(before, "Ready") != _message(status, "Ready"):
        cluster.event(body, "Warning", outcome.reason, outcome.problem)
    if isinstance(decision, NoPlan):
        if _message(before, "Degraded") != _message(status, "Degraded"):
            cluster.event(body, "Warning", "NoPlan", decision.reason)
        return
    last = before.last_decision
    if decision.plan.held:
        if last is None or last.acted:
            cluster.event(body, "Warning", "PlanHeld", "; ".join(decision.plan.reasons))
    elif last is None or decision.summary != last.summary:
        acted = status.last_decision is not None and status.last_decision.acted
        verb = "PlanChanged" if acted else "PlanRecommended"
        cluster.event(body, "Normal", verb, decision.summary)
