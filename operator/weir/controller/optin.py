"""The annotations by which a Secret lets weir use it, and how they are read.

A Secret names who may use it: the HostedEndpoints its key may be sent to
(`weir.dev/hosted-endpoints`) and the InferenceDeployments whose engines may
read it (`weir.dev/inference-deployments`), as comma-separated names. Pure, so
the operator (weir.controller.references) and `weir doctor`'s judgement read
the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping

SECRET_OPT_IN = "weir.dev/hosted-endpoints"
WEIGHTS_OPT_IN = "weir.dev/inference-deployments"


def names(annotations: Mapping[str, str] | None, annotation: str, name: str) -> bool:
    """Whether the opt-in annotation's comma-separated list names `name`."""
    listed = (annotations or {}).get(annotation, "")
    return name in {n.strip() for n in listed.split(",")}
