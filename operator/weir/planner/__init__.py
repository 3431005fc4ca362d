"""The pure decision engine: capacity model, forecast, optimiser, stabilisation, admission.

No I/O and no clock (import-linter enforces the first; time is an argument).
Entry points: `weir.planner.optimise.plan` for the control loop and
`weir.planner.admission.admit` for the router; `weir.planner.economics` holds
the $ per useful token arithmetic both of them and the simulator share.
"""
