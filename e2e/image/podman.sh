#!/usr/bin/env bash
# podman as these machines need it: installed from Debian's packages when
# missing, and run with runc where the cgroups are not pure v2 (crun, Debian's
# default, fails on hybrid cgroups). `make image` and tests/image call podman
# through this, so both see the same runtime.
#
# Usage: e2e/image/podman.sh ARGS...   (podman's own arguments)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

command -v podman >/dev/null || ensure_packages podman runc
flags=()
if [[ $(stat -fc %T /sys/fs/cgroup) != cgroup2fs ]]; then
    command -v runc >/dev/null || [[ -x /usr/sbin/runc ]] || ensure_packages runc
    flags+=(--runtime runc)
fi
exec podman "${flags[@]}" "$@"
