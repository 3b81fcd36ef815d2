#!/usr/bin/env bash
# examples/demo/run.sh - ringress on the manifests of this folder, in front of
# two ringress-echo backends ("web" on 127.0.0.1:9101, "api" on :9102).
#
#   zig build demo        (sets RINGRESS_BIN and RINGRESS_ECHO)
#   RINGRESS_BIN=zig-out/bin/ringress RINGRESS_ECHO=zig-out/bin/ringress-echo bash examples/demo/run.sh
#
# Listens on 127.0.0.1:8080 (HTTP) and :10254 (admin). Ctrl-C stops everything
# it started. DEMO_NO_WAIT=1 runs the sample requests and exits (smoke test).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="${RINGRESS_BIN:-$root/zig-out/bin/ringress}"
echo_bin="${RINGRESS_ECHO:-$root/zig-out/bin/ringress-echo}"
http_port="${DEMO_HTTP_PORT:-8080}"
https_port="${DEMO_HTTPS_PORT:-8443}"
admin_port="${DEMO_ADMIN_PORT:-10254}"

for b in "$bin" "$echo_bin"; do
	if [ ! -x "$b" ]; then
		echo "demo: $b not found or not executable (run 'zig build' first)" >&2
		exit 1
	fi
done

work="$(mktemp -d -t ringress-demo.XXXXXX)"
pids=()
cleanup() {
	trap - INT TERM EXIT
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 1 50); do
		alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits until something listens on 127.0.0.1:$1 (5 s at most).
wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "demo: nothing listens on 127.0.0.1:$1 after 5 s" >&2
	return 1
}

"$echo_bin" --listen 127.0.0.1:9101 --name web >"$work/web.log" 2>&1 &
pids+=($!)
"$echo_bin" --listen 127.0.0.1:9102 --name api >"$work/api.log" 2>&1 &
pids+=($!)
wait_port 9101
wait_port 9102

# Output through a process substitution so that $! is ringress itself.
"$bin" --manifests "$here" --bind 127.0.0.1 --http-port "$http_port" --admin-port "$admin_port" \
	--https-port "$https_port" \
	--log-level info > >(sed -u 's/^/ringress: /') 2>&1 &
pids=("$!" "${pids[@]}")
wait_port "$http_port"

ready=0
for _ in $(seq 1 100); do
	if curl -fsS -o /dev/null "http://127.0.0.1:$admin_port/readyz" 2>/dev/null; then ready=1; break; fi
	sleep 0.05
done
[ "$ready" = 1 ] || echo "demo: /readyz did not answer 200 within 5 s" >&2

show() {
	local shown="" a
	for a in "$@"; do
		case "$a" in *[\ \?\&\*]*) shown+=" '$a'" ;; *) shown+=" $a" ;; esac
	done
	echo
	echo "\$${shown}"
	"$@" 2>&1 | grep -E '^(HTTP/|service=|target=|header\.host=|ok)' || true
}

u="http://127.0.0.1:$http_port"
echo "ringress is up: $u (admin http://127.0.0.1:$admin_port)"
show curl -si -H 'Host: web.demo.local' "$u/"
show curl -si -H 'Host: api.demo.local' "$u/v1/users?id=7"
show curl -si -H 'Host: api.demo.local' "$u/about"
show curl -si -H 'Host: shop.apps.demo.local' "$u/cart"
show curl -si "$u/api/health"
show curl -si "$u/index.html"
# HTTPS with the self-signed default certificate (no Secret in the demo).
show curl -ski --resolve "web.demo.local:$https_port:127.0.0.1" "https://web.demo.local:$https_port/"
show curl -si "http://127.0.0.1:$admin_port/healthz"
show curl -si "http://127.0.0.1:$admin_port/readyz"

if [ "${DEMO_NO_WAIT:-0}" = 1 ]; then exit 0; fi
echo
echo "Try more yourself, e.g. curl -H 'Host: api.demo.local' $u/v1/users"
echo "Edit the manifests in $here to see live reload. Ctrl-C stops the demo."
while :; do
	for p in "${pids[@]}"; do
		if ! kill -0 "$p" 2>/dev/null; then
			echo "demo: process $p exited; stopping" >&2
			exit 1
		fi
	done
	sleep 1
done
