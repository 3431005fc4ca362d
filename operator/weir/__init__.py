"""weir: run LLM deployments at the lowest $ per useful token that meets the SLO.

The package is split in layers that import-linter checks (see `.importlinter`):
`weir.api` holds the resource models and depends on nothing else in weir;
`weir.planner` and `weir.sim` are pure (no I/O, no clock); the I/O layers
(`weir.controller`, `weir.metrics`, `weir.router`, `weir_lab.cluster`) sit on top.
"""

__version__ = "0.1.0"
