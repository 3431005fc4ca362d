"""Reading what happened from Prometheus: one batched query set per cycle for all deployments.

The router, the engines and the DCGM exporter expose metrics; Prometheus
scrapes them; this package reads them back as typed, timestamped snapshots
that know when they are stale or unhealthy. It only collects: deciding is the
planner's job.
"""
