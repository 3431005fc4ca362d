#!/usr/bin/env bash
# The local node's container runtime from Debian's packages: containerd (1.6),
# runc and the CNI plugins (bridge, host-local, loopback), installed when
# missing. `weir cluster up` runs this before starting the node, so a fresh
# machine gets everything from the project's own scripts. Prints the paths of
# the binaries the node runs, one "name=path" a line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../image/lib.sh
source "$here/../image/lib.sh"

ensure_packages containerd runc containernetworking-plugins
cni=/usr/lib/cni
for plugin in bridge host-local loopback; do
    [[ -x $cni/$plugin ]] || die "the CNI plugin $cni/$plugin is missing after installing containernetworking-plugins"
done
echo "containerd=$(command -v containerd)"
echo "ctr=$(command -v ctr)"
echo "runc=$(command -v runc || echo /usr/sbin/runc)"
echo "cni_bin_dir=$cni"
