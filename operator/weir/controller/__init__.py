"""The operator: kopf handlers that run InferenceDeployments on the cluster.

Reconcile is level-based (desired children computed from scratch every
time), the control loop runs on timers, and everything it decides is written
to status and events. The planner it calls is pure; this package does the I/O.
"""
