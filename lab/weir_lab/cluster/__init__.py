"""A real local Kubernetes control plane with simulated GPU node pools.

weir is an operator: nothing it promises can be shown without a real API
server, scheduler and nodes. This package runs etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and KWOK (simulated nodes) as local
processes, plus a real Prometheus, all on loopback, for the demo and the tests.
It is developer tooling: the operator itself never imports it.
"""
