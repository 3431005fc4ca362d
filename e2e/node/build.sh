#!/usr/bin/env bash
# Builds the local cluster's real node: the kubelet (from the Go module proxy,
# like ../toolchain/build.sh builds the control plane) and the node's pause
# image (a sandbox holder: no registry is reachable to pull
# registry.k8s.io/pause).
#
# Why a wrapper module of its own: k8s.io/kubernetes replaces its staging
# modules with local paths, so `go install k8s.io/kubernetes/cmd/kubelet@v1.x`
# fails; kubelet/go.mod pins the published v0.x staging modules, like
# ../toolchain/k8s/go.mod, and keeps the control plane's cache folder untouched.
# Binaries are cached outside the repository, one folder per component and
# version, written atomically (built into a temporary folder, then renamed),
# and never rebuilt while the version holds.
#
#   build.sh          build what is missing, print "name=dir" per component
#   build.sh paths    print "name=dir" per component, build nothing
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${WEIR_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weir/toolchain}

kubelet_version=$(awk '($1=="require" && $2=="k8s.io/kubernetes") {print $3; exit} ($1=="k8s.io/kubernetes" && $2 ~ /^v/) {print $2; exit}' "$here/kubelet/go.mod")
# the pause image changes only with its source: its version is the source's hash
pause_version=$(cat "$here/pause/go.mod" "$here/pause/main.go" | sha256sum | cut -c1-12)
dir_of() { echo "$cache/$1-$2"; }

print_paths() {
  echo "kubelet=$(dir_of kubelet "$kubelet_version")"
  echo "pause=$(dir_of pause "$pause_version")"
}

if [ "${1:-}" = paths ]; then print_paths; exit 0; fi

if ! command -v go >/dev/null 2>&1; then
  echo "weir: the Go toolchain (>= 1.24) is needed to build the local node's kubelet, and 'go' is not on PATH." >&2
  echo "weir: install Go (https://go.dev/dl or your package manager), then run the command again." >&2
  exit 3
fi

export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
jobs=${WEIR_BUILD_JOBS:-2}

# build NAME VERSION MODULE_DIR LDFLAGS PACKAGE...
build() {
  local name=$1 version=$2 mod=$3 ldflags=$4; shift 4
  local out; out=$(dir_of "$name" "$version")
  if [ -f "$out/.complete" ]; then return 0; fi
  echo "weir: building $name $version (first time on this machine; cached in $out)" >&2
  mkdir -p "$cache"
  local tmp; tmp=$(mktemp -d "$cache/.build-$name-XXXXXX"); chmod 755 "$tmp"
  (cd "$here/$mod" && go mod download && \
    go build -p "$jobs" -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$tmp/" "$@") || {
    rm -rf "$tmp"
    echo "weir: building $name $version failed (output above); nothing was cached, fix the cause and run again." >&2
    return 4
  }
  date -u +%Y-%m-%dT%H:%M:%SZ > "$tmp/.complete"
  rm -rf "$out"
  mv "$tmp" "$out"
}

# Stamp versions the way hack/lib/version.sh does: an unstamped kubelet
# reports v0.0.0-master, which the API server's node view misreads.
minor=$(echo "$kubelet_version" | cut -d. -f2)
ldflags="-s -w"
for kv in "gitVersion=$kubelet_version" gitMajor=1 "gitMinor=$minor" gitTreeState=clean "buildDate=1970-01-01T00:00:00Z"; do
  ldflags="$ldflags -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
done

build pause "$pause_version" pause "-s -w" .
build kubelet "$kubelet_version" kubelet "$ldflags" k8s.io/kubernetes/cmd/kubelet
print_paths
