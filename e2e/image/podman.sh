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
# Containers get the caller's own limits: podman asks runc for more open files
# and processes than the caller has (1048576 and the maximum), and a machine
# whose root lacks CAP_SYS_RESOURCE (these do) cannot raise a hard limit, so
# every container fails with "error setting rlimit type 7: operation not
# permitted". The process limit is capped at pid_max, as no more can exist.
limits=()
if [[ ${1:-} == run || ${1:-} == create ]]; then
    nofile=$(ulimit -Hn)
    nproc=$(ulimit -Hu)
    pid_max=$(cat /proc/sys/kernel/pid_max)
    [[ $nproc == unlimited || $nproc -gt $pid_max ]] && nproc=$pid_max
    [[ $nofile == unlimited ]] && nofile=1048576
    limits=("$1" --ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
    shift
fi
exec podman "${flags[@]}" "${limits[@]}" "$@"
