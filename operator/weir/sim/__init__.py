"""Trace-driven simulator, baselines and the `weir bench planner` / `weir whatif` commands.

It replays real request traces through the same planner and admission code
the operator and router run, next to the autoscalers people run today, so
weir's economic claim is measured rather than asserted. Deterministic per
seed; no I/O beyond reading traces and writing reports.
"""
