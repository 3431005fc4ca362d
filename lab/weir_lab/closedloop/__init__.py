"""The closed loop on the local cluster: a hosted API stand-in, traffic replay, the
deployment under test, and the figures the demo and the scenario tests read back.

Everything here drives the real parts (operator process, router and engine
pods run by the pod supervisor, Prometheus) and only measures; the promises
themselves are asserted by the scenario tests under tests/scenarios and
summarised by `weir demo`.
"""
