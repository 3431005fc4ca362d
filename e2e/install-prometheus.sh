#!/usr/bin/env bash
# Installs Debian's prometheus package without starting its daemon, for its
# promtool (the chart tests check the alert rules with it). The local cluster's
# Prometheus is not this one: toolchain/build.sh builds Prometheus 3 with
# Kubernetes discovery. A packaged daemon on 0.0.0.0:9090 would be a stray
# listener, hence the policy-rc.d.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then exit 0; fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "weir: Prometheus is missing and this machine has no apt-get; install Prometheus' promtool (>= 2.42) so that 'promtool' is on PATH" >&2
  exit 3
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "weir: installing Prometheus needs root (apt-get install prometheus)" >&2; exit 3; }
  sudo=sudo
fi
echo "weir: installing Debian's prometheus package" >&2
policy=/usr/sbin/policy-rc.d
had_policy=0; [ -e "$policy" ] && had_policy=1
if [ $had_policy = 0 ]; then printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null; $sudo chmod +x "$policy"; fi
trap '[ $had_policy = 0 ] && $sudo rm -f "$policy"' EXIT
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
