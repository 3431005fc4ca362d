#!/usr/bin/env bash
# Runs inside the trixie root filesystem (started by run.sh, never by hand):
# makes the venv at /opt/weir-venv when it is not complete yet, as `make setup`
# makes .venv, then runs pytest from the repository (an overlay at /src/weir).
#
# Usage: inside.sh PYTHON_VERSION PYTEST_ARGS...
set -euo pipefail
say() { printf '[newest-python %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}

version=${1:?usage: inside.sh PYTHON_VERSION PYTEST_ARGS...}
shift
python=/usr/bin/python$version
venv=/opt/weir-venv
cd /src/weir
[[ -x $python ]] || die "$python is missing from the root filesystem"

if [[ ! -f $venv/.installed ]]; then
    say "making the venv with $($python --version) (once per pyproject.toml change)"
    start=$SECONDS
    find "$venv" -mindepth 1 -delete # what an interrupted install left
    "$python" -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q -e '.[test,engine,plots]' -e ./lab \
        || die "pip could not install weir on python$version"
    touch "$venv/.installed"
    say "venv made in $((SECONDS - start)) s"
else
    say "venv is cached ($($venv/bin/python --version))"
fi
actual=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ $actual == "$version" ]] || die "the venv runs python $actual, not $version"
say "pytest on python$version: $*"
# No pytest cache: the overlay would drop it anyway.
exec "$venv/bin/pytest" -q -p no:cacheprovider "$@"
