#!/usr/bin/env bash
# The unit tests on the newest Python weir supports (3.13, Debian trixie's),
# beside the 3.11 suite that `make test` runs in .venv: `make test-newest-python`.
#
# This machine has only Python 3.11 (Debian bookworm) and reaches no registry
# but Debian's packages and PyPI, so the newer interpreter comes from Debian:
# a trixie root filesystem made by mmdebstrap (as e2e/image/debian-base.sh
# makes the image's base), entered with chroot inside a private mount and PID
# namespace (unshare). Inside, a venv gets exactly what `make setup` installs
# (-e '.[test,engine,plots]' -e ./lab) and pytest runs the tests that need no
# cluster and no Prometheus (`-m unit --ignore=tests/cluster --ignore=tests/image`).
#
# Usage: e2e/newest-python/run.sh [PYTEST_ARGS...]
#   default: -m unit --ignore=tests/cluster --ignore=tests/image
#   WEIR_NEWEST_PYTHON_CACHE   default ~/.cache/weir/newest-python
#   WEIR_DEBIAN_MIRROR, WEIR_DEBIAN_SECURITY_MIRROR   default deb.debian.org
#
# Cached (made once per machine, reused while the key holds):
#   <cache>/<suite>-py<version>-<hash>/rootfs       the root filesystem; the hash
#       covers the suite, packages, variant, hooks, dpkg options and $recipe
#   <cache>/<suite>-py<version>-<hash>/venv-<hash>  the venv (mounted at
#       /opt/weir-venv), keyed by pyproject.toml and lab/pyproject.toml
# The pip cache (~/.cache/pip) is shared with the host's, so wheels that are
# not tied to a Python version (torch's CUDA libraries) download once where the
# index lets pip cache them.
#
# The repository is seen inside through an overlay at /src/weir (a fixed path,
# so the cached editable install works from any clone): whatever the install
# or the tests write (egg-info, __pycache__, pytest's cache) lands in a
# throw-away upper layer, never in the checkout or the host's .venv.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../image/lib.sh
source "$root/e2e/image/lib.sh" # ensure_packages, short_hash, debian_sources
say() { printf '[newest-python %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

suite=trixie
python=3.13
mirror=$debian_mirror
# python3.13-venv brings ensurepip; libstdc++6 is what manylinux wheels (numpy,
# torch) take from the system; mawk is the awk the toolchain script (and its
# test) uses; ca-certificates for pip, overlaid by the host's bundle below.
packages=(ca-certificates "python$python" "python$python-venv" libstdc++6 mawk)
variant=essential
mapfile -t sources < <(debian_sources "$suite")
cache=${WEIR_NEWEST_PYTHON_CACHE:-$HOME/.cache/weir/newest-python}
# Bump when the way the root filesystem is made changes (not the mounts or the tests).
recipe=1
rootfs_key=$(printf '%s\n' "$recipe" "$suite" "$python" "$variant" "${packages[@]}" "${debian_hooks[@]}" \
    "${debian_dpkgopts[@]}" | short_hash)
base=$cache/$suite-py$python-$rootfs_key
rootfs=$base/rootfs
venv_key=$(cat "$root/pyproject.toml" "$root/lab/pyproject.toml" | short_hash)
venv=$base/venv-$venv_key

# --- in the private namespaces (run.sh __enter): mounts, then chroot ---------
if [[ ${1:-} == __enter ]]; then
    shift
    upper=$1
    shift
    mount --make-rprivate /
    mount -t overlay overlay -o "lowerdir=$root,upperdir=$upper/up,workdir=$upper/work" \
        "$rootfs/src/weir" || die "cannot mount an overlay of $root (overlayfs, as root)"
    mount --bind "$venv" "$rootfs/opt/weir-venv"
    mount -t proc proc "$rootfs/proc"
    mount --rbind /dev "$rootfs/dev"
    mount --rbind /sys "$rootfs/sys"
    mount -t tmpfs -o size=8g tmpfs "$rootfs/tmp"
    for file in /etc/resolv.conf /etc/hosts; do
        if [[ -e $file ]]; then mount --bind "$(readlink -f "$file")" "$rootfs$file"; fi
    done
    # The host's CA bundle (it may hold a proxy's CA that Debian's lacks).
    mount --bind "$ca_bundle" "$rootfs/etc/weir-host-ca.crt"
    mkdir -p "$HOME/.cache/pip" "$toolchain"
    mount --bind "$HOME/.cache/pip" "$rootfs/root/.cache/pip"
    mount --bind -o ro "$toolchain" "$rootfs/root/.cache/weir/toolchain"
    # The data beside the checkout (../shared, read by the simulator's tests) and
    # the host's promtool (the chart's alert rules; a Go binary needing only libc).
    shared=$(dirname "$root")/shared
    if [[ -d $shared ]]; then
        mkdir -p "$rootfs/src/shared"
        mount --bind -o ro "$shared" "$rootfs/src/shared"
    fi
    touch "$rootfs/usr/local/bin/promtool"
    mount --bind -o ro "$(command -v promtool)" "$rootfs/usr/local/bin/promtool"
    # A clean environment: only pip's settings, proxies and OpenBLAS's knobs pass.
    envs=(HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        LANG=C.UTF-8 TERM="${TERM:-dumb}" CI="${CI:-}" WEIR_TOOLCHAIN_CACHE=/root/.cache/weir/toolchain
        PIP_CERT=/etc/weir-host-ca.crt SSL_CERT_FILE=/etc/weir-host-ca.crt
        REQUESTS_CA_BUNDLE=/etc/weir-host-ca.crt)
    while IFS='=' read -r name value; do
        case $name in
        PIP_CERT | PIP_FIND_LINKS) ;; # the host's bundle is mounted; its wheel folder is not
        PIP_* | OPENBLAS_* | http_proxy | https_proxy | no_proxy | HTTP_PROXY | HTTPS_PROXY | NO_PROXY)
            envs+=("$name=$value")
            ;;
        esac
    done < <(env)
    exec chroot "$rootfs" /usr/bin/env -i "${envs[@]}" \
        /bin/bash /src/weir/e2e/newest-python/inside.sh "$python" "$@"
fi

# --- on the host --------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "needs root (mmdebstrap into a folder, mounts, chroot)"
command -v unshare >/dev/null || die "unshare (util-linux) is missing"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -n 9 || {
    say "waiting for another newest-python run to finish"
    flock 9
}

if [[ ! -f $rootfs/.complete ]]; then
    ensure_packages mmdebstrap
    say "making the Debian $suite root filesystem with mmdebstrap (${packages[*]}): once per key $rootfs_key"
    start=$SECONDS
    rm -rf "$base"
    mkdir -p "$base"
    partial=$(mktemp -d "$base/.rootfs-XXXXXX")
    trap 'rm -rf "$partial"' EXIT
    opts=(--variant="$variant" --include="$(
        IFS=,
        echo "${packages[*]}"
    )" --quiet)
    for opt in "${debian_dpkgopts[@]}"; do opts+=(--dpkgopt="$opt"); done
    for hook in "${debian_hooks[@]}"; do opts+=(--hook-dir="$hook"); done
    rmdir "$partial" # mmdebstrap wants to make the folder itself (or find it empty)
    log=$base/mmdebstrap.log
    mmdebstrap "${opts[@]}" "$suite" "$partial" "${sources[@]}" >"$log" 2>&1 || {
        tail -n 30 "$log" >&2
        die "mmdebstrap could not make the $suite root filesystem (mirror $mirror; log $log)"
    }
    chroot "$partial" "/usr/bin/python$python" --version >/dev/null \
        || die "python$python does not run in the new root filesystem"
    mkdir -p "$partial/src/weir" "$partial/opt/weir-venv" "$partial/root/.cache/pip" \
        "$partial/root/.cache/weir/toolchain"
    touch "$partial/etc/weir-host-ca.crt" "$partial/etc/resolv.conf" "$partial/etc/hosts"
    touch "$partial/.complete"
    mv "$partial" "$rootfs"
    trap - EXIT
    say "root filesystem made in $((SECONDS - start)) s: $(du -sh "$rootfs" | cut -f1)"
else
    say "root filesystem $suite/python$python is cached ($rootfs_key)"
fi
# Other keys' root filesystems and venvs (several GB each with torch) go.
for old in "$cache"/*/ "$base"/venv-*/; do
    old=${old%/}
    [[ -e $old && $old != "$base" && $old != "$rootfs" && $old != "$venv" ]] || continue
    say "removing the stale cache $old"
    rm -rf "$old"
done

# The chart and toolchain tests find helm and the control plane's binaries in
# the host's toolchain cache (`make setup` builds them; cheap when they are there).
# promtool comes from the host's Prometheus (e2e/install-prometheus.sh, as `make setup`).
say "checking the host's toolchain cache and promtool (as make setup)"
"$root/e2e/toolchain/build.sh" >/dev/null || die "e2e/toolchain/build.sh failed"
"$root/e2e/install-prometheus.sh" || die "e2e/install-prometheus.sh failed"
command -v promtool >/dev/null || die "promtool is not on PATH after e2e/install-prometheus.sh"
toolchain=${WEIR_TOOLCHAIN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/weir/toolchain}

ca_bundle=
for bundle in "${PIP_CERT:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [[ -n $bundle && -s $bundle ]]; then
        ca_bundle=$(readlink -f "$bundle")
        break
    fi
done
[[ -n $ca_bundle ]] || die "no CA bundle on the host (PIP_CERT or /etc/ssl/certs/ca-certificates.crt)"

mkdir -p "$venv"
upper=$(mktemp -d "$base/.overlay-XXXXXX")
trap 'rm -rf "$upper"' EXIT
mkdir "$upper/up" "$upper/work"
args=("$@")
# The unit layer (tests/conftest.py) less tests/cluster, whose unit-marked tests
# start a second local control plane (the lab's, not the product's Python), and
# tests/image, which runs the image's own Python (3.11) with podman.
[[ ${#args[@]} -gt 0 ]] || args=(-m unit --ignore=tests/cluster --ignore=tests/image)
say "entering $suite (python$python); pytest ${args[*]}"
start=$SECONDS
status=0
export ca_bundle toolchain
unshare --mount --pid --fork --propagation private \
    "$here/run.sh" __enter "$upper" "${args[@]}" || status=$?
say "python$python run took $((SECONDS - start)) s (exit $status)"
[[ $status -eq 0 ]] || die "the tests on python$python failed (exit $status)"
