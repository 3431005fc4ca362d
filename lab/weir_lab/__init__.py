"""weir's lab: everything that exercises the product without being the product.

The local control plane with simulated GPU pools (`cluster`), the pod
stand-ins and their supervisor, the closed-loop harness (`closedloop`), the
demo, the benchmarks of the operator and the router (`bench`), the load
generator and the upstream stand-in. It imports `weir` freely; `weir` never
imports it (import-linter checks both), and it ships in a distribution of its
own (`lab/pyproject.toml`), so the product's wheel and image carry none of it.
"""
