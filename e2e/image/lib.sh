# shellcheck shell=bash
# Shared by e2e/image/*.sh: progress lines, the cache folder, and installing
# what the image build needs from Debian's packages (nothing is installed by
# hand: a fresh machine of this kind gets everything from these scripts).

WEIR_IMAGE_CACHE=${WEIR_IMAGE_CACHE:-$HOME/.cache/weir/image}

say() { printf '[image %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Install Debian packages that are missing (apt, waiting for another apt's lock).
ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null \
        || die "missing ${missing[*]} and no apt-get here: install them, or set IMAGE_BASE to a registry base"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    say "installing ${missing[*]} (apt)"
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600)
    "${apt[@]}" install -y -q --no-install-recommends "${missing[@]}" >&2 \
        || { "${apt[@]}" update -q >&2 && "${apt[@]}" install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

# sha256 of stdin, first 16 hex digits: the cache keys.
short_hash() { sha256sum | cut -c1-16; }

# The Debian mirrors (WEIR_DEBIAN_MIRROR, WEIR_DEBIAN_SECURITY_MIRROR) and a suite's
# apt sources for mmdebstrap: main, its updates and its security archive.
debian_mirror=${WEIR_DEBIAN_MIRROR:-http://deb.debian.org/debian}
debian_security=${WEIR_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
debian_sources() {
    printf '%s\n' "deb $debian_mirror $1 main" "deb $debian_mirror $1-updates main" \
        "deb $debian_security $1-security main"
}

# How both root filesystems (the image's base, the newest-Python tests') are made.
# /usr merged by symlinks, as debootstrap does, with usr-is-merged installed:
# otherwise init-system-helpers pulls in usrmerge and with it 50 MB of perl.
debian_hooks=(/usr/share/mmdebstrap/hooks/merged-usr)
# Documentation, man pages and translations are never read in a container.
debian_dpkgopts=(
    'path-exclude=/usr/share/man/*'
    'path-exclude=/usr/share/info/*'
    'path-exclude=/usr/share/doc/*'
    'path-include=/usr/share/doc/*/copyright'
    'path-exclude=/usr/share/locale/*'
    'path-exclude=/usr/share/lintian/*'
)
