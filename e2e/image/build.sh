#!/usr/bin/env bash
# Builds weir's image from the repository's Containerfile: `make image` and
# tests/image both run this, so the test runs the image `make image` makes.
#
# Usage: e2e/image/build.sh        prints the image reference on stdout
#   IMAGE_REPO  default ghcr.io/weir-dev/weir
#   IMAGE_TAG   default the appVersion of charts/weir/Chart.yaml
#   IMAGE_BASE  default: a Debian bookworm base made here (e2e/image/debian-base.sh),
#               for machines that cannot pull; e.g. docker.io/library/python:3.11-slim
#   WEIR_IMAGE_BUILDER  podman, buildah or docker; default the first the
#               machine has (docker only with a running daemon), else podman from apt
#
# Cached by content: the build context is staged (Containerfile, pyproject.toml,
# README.md, operator/, engines/profiles/*.yaml) and hashed with the base
# image's ID; when the tagged image carries that hash in its label
# dev.weir.content, nothing is built. Builds hold a lock under
# ~/.cache/weir/image/, so a test and a `make image` never build at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

app_version=$(sed -n 's/^appVersion:[[:space:]]*"\{0,1\}\([^"[:space:]]*\)"\{0,1\}[[:space:]]*$/\1/p' \
    "$root/charts/weir/Chart.yaml")
[[ -n $app_version ]] || die "no appVersion in charts/weir/Chart.yaml"
ref=${IMAGE_REPO:-ghcr.io/weir-dev/weir}:${IMAGE_TAG:-$app_version}

pick_builder() {
    if [[ -n ${WEIR_IMAGE_BUILDER:-} ]]; then
        echo "$WEIR_IMAGE_BUILDER"
    elif command -v podman >/dev/null; then
        echo podman
    elif command -v buildah >/dev/null; then
        echo buildah
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        echo docker
    else
        echo podman # installed from Debian's packages by podman.sh
    fi
}
builder=$(pick_builder)
case $builder in
podman) tool=("$here/podman.sh") ;;
buildah)
    tool=(buildah)
    [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] || tool+=(--runtime runc)
    ;;
docker) tool=(docker) ;;
*) die "WEIR_IMAGE_BUILDER=$builder: podman, buildah or docker" ;;
esac

# The image's ID and one of its labels, empty when the builder has no such image.
image_id() {
    case $builder in
    buildah) buildah inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true ;;
    *) "${tool[@]}" image inspect --format '{{.Id}}' "$1" 2>/dev/null || true ;;
    esac
}
image_label() {
    case $builder in
    buildah) buildah inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" 2>/dev/null || true ;;
    *) "${tool[@]}" image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true ;;
    esac
}
report_size() {
    local bytes
    case $builder in
    buildah) bytes=$(buildah images --format '{{.Size}}' "$ref" | head -1) ;;
    *) bytes=$("${tool[@]}" image inspect --format '{{.Size}}' "$ref") ;;
    esac
    [[ $bytes =~ ^[0-9]+$ ]] && bytes="$((bytes / 1000000)) MB"
    say "$ref: $bytes ($builder)"
}

mkdir -p "$WEIR_IMAGE_CACHE"
exec 9>"$WEIR_IMAGE_CACHE/.lock"
flock -n 9 || { say "waiting for another image build to finish"; flock 9; }

if [[ -n ${IMAGE_BASE:-} ]]; then
    base=$IMAGE_BASE
else
    [[ $builder != podman ]] || "$here/podman.sh" --version >/dev/null # installs podman first
    base=$("$here/debian-base.sh" "$builder")
fi

ctx=$(mktemp -d "$WEIR_IMAGE_CACHE/.context-XXXXXX")
trap 'rm -rf "$ctx"' EXIT
tar -C "$root" --exclude=__pycache__ --exclude='*.egg-info' -cf - \
    Containerfile .containerignore pyproject.toml README.md operator engines/profiles \
    | tar -C "$ctx" -xf -
find "$ctx/engines/profiles" -type f ! -name '*.yaml' -delete
key=$({
    (cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    echo "base $base $(image_id "$base")"
} | short_hash)

if [[ $(image_label "$ref" dev.weir.content) == "$key" ]]; then
    say "$ref is up to date (content $key)"
    report_size
    echo "$ref"
    exit 0
fi

previous=$(image_id "$ref")
secret=()
for bundle in "${WEIR_IMAGE_CA_BUNDLE:-}" "${PIP_CERT:-}" /etc/ssl/certs/ca-certificates.crt \
    /etc/pki/tls/certs/ca-bundle.crt; do
    if [[ -n $bundle && -s $bundle ]]; then
        secret=(--secret "id=ca-bundle,src=$bundle")
        break
    fi
done
args=(-f "$ctx/Containerfile" --build-arg "BASE=$base" --label "dev.weir.content=$key"
    --network host -t "$ref" "${secret[@]}")
[[ $builder != buildah ]] || args+=(--layers)
say "building $ref on $base with $builder (content $key)"
start=$SECONDS
case $builder in
docker) DOCKER_BUILDKIT=1 docker build "${args[@]}" "$ctx" >&2 ;;
*) "${tool[@]}" build "${args[@]}" "$ctx" >&2 ;;
esac
say "built in $((SECONDS - start)) s"
# The image this one replaces is untagged now: remove it (unless a container uses it).
current=$(image_id "$ref")
if [[ -n $previous && $previous != "$current" ]]; then
    case $builder in
    buildah) buildah rmi "$previous" >/dev/null 2>&1 || true ;;
    *) "${tool[@]}" rmi "$previous" >/dev/null 2>&1 || true ;;
    esac
fi
report_size
echo "$ref"
