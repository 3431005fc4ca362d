#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok), helm (chart tests) and Prometheus (the local
# cluster's, with Kubernetes discovery) from the Go module proxy.
#
# Why a script and wrapper modules: k8s.io/kubernetes replaces its staging
# modules with local paths, so `go install k8s.io/kubernetes/cmd/...@v1.x`
# fails; the wrapper modules under this folder pin the published v0.x staging
# modules instead (see ../../README.md "Local cluster"). Binaries are cached
# outside the repository, one folder per component and version, written
# atomically (built into a temporary folder, then renamed), so an interrupted
# build never leaves a half-filled cache behind.
#
#   build.sh          build what is missing, print "name=dir" per component
#   build.sh paths    print "name=dir" per component, build nothing
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${WEIR_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weir/toolchain}

# version of the module a wrapper requires, read from its go.mod
req_version() { awk -v m="$2" '($1=="require" && $2==m) {print $3; exit} ($1==m && $2 ~ /^v/) {print $2; exit}' "$here/$1/go.mod"; }

k8s_version=$(req_version k8s k8s.io/kubernetes)
etcd_version=$(req_version etcd go.etcd.io/etcd/server/v3)
kwok_version=$(req_version kwok sigs.k8s.io/kwok)
helm_version=$(req_version helm helm.sh/helm/v3)
prometheus_version=$(req_version prometheus github.com/prometheus/prometheus)
dir_of() { echo "$cache/$1-$2"; }

print_paths() {
  echo "k8s=$(dir_of k8s "$k8s_version")"
  echo "etcd=$(dir_of etcd "$etcd_version")"
  echo "kwok=$(dir_of kwok "$kwok_version")"
  echo "helm=$(dir_of helm "$helm_version")"
  echo "prometheus=$(dir_of prometheus "$prometheus_version")"
}

if [ "${1:-}" = paths ]; then print_paths; exit 0; fi

if ! command -v go >/dev/null 2>&1; then
  echo "weir: the Go toolchain (>= 1.24) is needed to build the local control plane, and 'go' is not on PATH." >&2
  echo "weir: install Go (https://go.dev/dl or your package manager), then run the command again." >&2
  exit 3
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Two cores and a large module graph: bound parallelism so peak memory stays
# predictable (the linker of kube-apiserver alone takes ~2 GiB).
jobs=${WEIR_BUILD_JOBS:-2}

# build NAME VERSION MODULE_DIR LDFLAGS PACKAGE...   (TAGS overrides the build tags)
build() {
  local name=$1 version=$2 mod=$3 ldflags=$4 tags=${TAGS:-selinux,notest}; shift 4
  local out; out=$(dir_of "$name" "$version")
  if [ -f "$out/.complete" ]; then return 0; fi
  echo "weir: building $name $version (first time on this machine; cached in $out)" >&2
  mkdir -p "$cache"
  local tmp; tmp=$(mktemp -d "$cache/.build-$name-XXXXXX"); chmod 755 "$tmp"
  (cd "$here/$mod" && go mod download && \
    go build -p "$jobs" -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp/" "$@") || {
    rm -rf "$tmp"
    echo "weir: building $name $version failed (output above); nothing was cached, fix the cause and run again." >&2
    return 4
  }
  # a module path ending in /v3 builds a binary named after its parent folder
  if [ -f "$tmp/server" ]; then mv "$tmp/server" "$tmp/etcd"; fi
  date -u +%Y-%m-%dT%H:%M:%SZ > "$tmp/.complete"
  rm -rf "$out"
  mv "$tmp" "$out"
}

# Stamp versions the way hack/lib/version.sh does: unstamped binaries report
# v0.0.0-master, which version checks (kwok's, kubectl's) misread.
minor=$(echo "$k8s_version" | cut -d. -f2)
k8s_ldflags="-s -w"
for kv in "gitVersion=$k8s_version" gitMajor=1 "gitMinor=$minor" gitTreeState=clean "buildDate=1970-01-01T00:00:00Z"; do
  k8s_ldflags="$k8s_ldflags -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done

build etcd "$etcd_version" etcd "-s -w" go.etcd.io/etcd/server/v3
build kwok "$kwok_version" kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version" sigs.k8s.io/kwok/cmd/kwok
build helm "$helm_version" helm "-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version" helm.sh/helm/v3/cmd/helm
# Prometheus 3.x is published as module v0.3MM.P = 3.MM.P. Only the discovery
# mechanisms the cluster uses (kubernetes; file and http are always in), like
# upstream's `remove_all_sd`: the cloud SDKs of the others would double the
# build. No `builtinassets`: the web UI's assets are not needed (the API is).
# Its go.mod asks for Go >= 1.26.7 (an older go fetches that toolchain itself).
prom_minor=$(echo "$prometheus_version" | cut -d. -f2); prom_patch=$(echo "$prometheus_version" | cut -d. -f3)
prom_release="3.$((prom_minor - 300)).$prom_patch"
TAGS=netgo,remove_all_sd,enable_kubernetes_sd build prometheus "$prometheus_version" prometheus \
  "-s -w -X github.com/prometheus/common/version.Version=$prom_release -X github.com/prometheus/common/version.Branch=release" \
  github.com/prometheus/prometheus/cmd/prometheus
build k8s "$k8s_version" k8s "$k8s_ldflags" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
print_paths
