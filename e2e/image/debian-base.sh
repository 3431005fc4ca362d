#!/usr/bin/env bash
# The image's base on machines that cannot pull from a registry: a Debian root
# filesystem made by mmdebstrap from Debian's packages (bookworm's python3 is
# CPython 3.11, the version pyproject.toml requires), imported as an image.
#
# Usage: e2e/image/debian-base.sh BUILDER   (podman, buildah or docker)
# Prints the base image's name on stdout; progress goes to stderr.
#
# The root filesystem is cached as a tarball under ~/.cache/weir/image/ keyed
# by the suite, the package list and the recipe below, so it is made once per
# machine (about a minute) and re-imported in seconds when the builder's store
# lacks it. Override with WEIR_DEBIAN_SUITE, WEIR_DEBIAN_MIRROR, WEIR_IMAGE_CACHE.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

builder=${1:?usage: debian-base.sh podman|buildah|docker}
suite=${WEIR_DEBIAN_SUITE:-bookworm}
# python3-venv brings ensurepip (the build stage makes a venv); ca-certificates
# lets the product reach https endpoints (hosted APIs, the API server's CA aside);
# libstdc++6 is what numpy's manylinux wheel expects of the system (the official
# slim image has it, for its apt).
packages=(ca-certificates libstdc++6 python3 python3-venv)
# Essential packages only (no apt, no init): the image never installs packages.
variant=essential
mapfile -t sources < <(debian_sources "$suite")

key=$(printf '%s\n' "$suite" "$variant" "${packages[@]}" "${debian_hooks[@]}" "${debian_dpkgopts[@]}" | short_hash)
name=localhost/weir-base:$suite-$key
tarball=$WEIR_IMAGE_CACHE/base-$suite-$key.tar

has_image() {
    case $builder in
    podman) podman image exists "$name" ;;
    buildah) buildah inspect --type image "$name" >/dev/null 2>&1 ;;
    docker) docker image inspect "$name" >/dev/null 2>&1 ;;
    esac
}

if has_image; then
    echo "$name"
    exit 0
fi

if [[ ! -s $tarball ]]; then
    ensure_packages mmdebstrap
    mkdir -p "$WEIR_IMAGE_CACHE"
    say "making the Debian $suite root filesystem with mmdebstrap (${packages[*]})"
    start=$SECONDS
    partial=$(mktemp "$WEIR_IMAGE_CACHE/.base-XXXXXX.tar")
    trap 'rm -f "$partial"' EXIT
    opts=(--variant="$variant" --include="$(IFS=,; echo "${packages[*]}")" --quiet)
    for opt in "${debian_dpkgopts[@]}"; do opts+=(--dpkgopt="$opt"); done
    for hook in "${debian_hooks[@]}"; do opts+=(--hook-dir="$hook"); done
    # Identical bytes for identical packages: the tarball's mtimes are fixed.
    SOURCE_DATE_EPOCH=0 mmdebstrap "${opts[@]}" "$suite" "$partial" "${sources[@]}" >&2
    mv "$partial" "$tarball"
    trap - EXIT
    say "root filesystem made in $((SECONDS - start)) s: $(du -h "$tarball" | cut -f1)"
fi

say "importing $tarball as $name"
changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    --change 'CMD ["/usr/bin/python3"]')
case $builder in
podman) podman import --quiet "${changes[@]}" "$tarball" "$name" >/dev/null ;;
docker) docker import "${changes[@]}" "$tarball" "$name" >/dev/null ;;
buildah)
    container=$(buildah from scratch)
    buildah add "$container" "$tarball" / >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd /usr/bin/python3 "$container"
    buildah commit --rm --quiet "$container" "$name" >/dev/null
    ;;
esac
echo "$name"
