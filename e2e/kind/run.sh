#!/usr/bin/env bash
# The closed-loop scenarios on a kind cluster, for machines with Docker.
#
# NOT RUN on weir's own machines (no Docker engine there); kept small on purpose.
# It creates the cluster from cluster.yaml, advertises 8 fake GPUs per worker,
# installs weir's CRDs, and runs tests/scenarios against it with
# WEIR_CLUSTER_POD_NETWORK=false: on kind the pods are real containers, so the
# local pod supervisor and network namespace are not used. What a real run still
# needs and this script does not provide: an image of this package (the router
# pods run `weir router`; set WEIR_OPERATOR_ROUTER_IMAGE), engine pods that can
# run without GPUs (the TensorRT-LLM image cannot: point the engine image at one
# that runs `weir engine --backend emulated`), and a Prometheus that scrapes pods
# by their prometheus.io annotations, reachable at WEIR_CLUSTER_PROMETHEUS_PORT.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "kind scenarios need $tool on PATH" >&2; exit 3; }
done
kind get clusters | grep -qx weir || kind create cluster --config "$here/cluster.yaml"
kubeconfig=$(mktemp); kind get kubeconfig --name weir > "$kubeconfig"
for node in $(kubectl --kubeconfig "$kubeconfig" get nodes -l weir.dev/pool -o name); do
  kubectl --kubeconfig "$kubeconfig" patch "$node" --subresource=status --type=merge \
    -p '{"status":{"capacity":{"nvidia.com/gpu":"8"},"allocatable":{"nvidia.com/gpu":"8"}}}'
done
kubectl --kubeconfig "$kubeconfig" apply --server-side -f "$repo/crds/"
cd "$repo"
WEIR_TEST_KUBECONFIG="$kubeconfig" WEIR_CLUSTER_POD_NETWORK=false \
  .venv/bin/pytest -q tests/scenarios "$@"
