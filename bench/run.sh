#!/usr/bin/env bash
# bench/run.sh - wrk against ringress, HAProxy and nginx proxying to one
# nginx origin serving a ~100-byte file; prints a markdown table.
#
#   zig build bench                 (5 s per proxy)
#   zig build bench -- --quick      (2 s per proxy)
#   bash bench/run.sh [--quick] [--duration S] [--connections N] [--only LIST] [--no-pin]
#
#   --only LIST   comma-separated subset of: direct,ringress,haproxy,nginx
#   --no-pin      do not pin processes to CPUs (machines with one CPU)
#
# Placement (2 CPUs): the proxy under test on CPU 0; the origin and wrk on
# CPU 1 (wrk -t1 -c50 --latency). Each proxy runs alone, one after another,
# with a 1 s warm-up before the measured run. CPU time of the proxy is
# utime+stime of its process (all threads) and its children, read from /proc
# before and after the run. Everything (configs, logs, pid files) lives in
# a mktemp directory, removed on exit; every process started is stopped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
RINGRESS_BIN="${RINGRESS_BIN:-$root/zig-out/bin/ringress}"

duration=5
conns=50
only="direct,ringress,haproxy,nginx"
pin=1
base="${BENCH_PORT_BASE:-18080}"
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) duration=2 ;;
	--duration) duration="$2"; shift ;;
	--connections) conns="$2"; shift ;;
	--only) only="$2"; shift ;;
	--no-pin) pin=0 ;;
	-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
	*) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

for t in wrk nginx haproxy curl; do
	command -v "$t" >/dev/null || { echo "bench: $t not found (bootstrap.sh installs it)" >&2; exit 1; }
done
ncpu="$(nproc)"
if [ "$pin" = 1 ] && [ "$ncpu" -lt 2 ]; then
	echo "bench: only $ncpu CPU available, not pinning" >&2
	pin=0
fi
# Command prefixes (arrays, not functions: a function run with & would make
# $! the pid of a subshell instead of the process itself; taskset execs).
proxy_cpu=() load_cpu=()
if [ "$pin" = 1 ]; then proxy_cpu=(taskset -c 0); load_cpu=(taskset -c 1); fi

# One benchmark at a time on this machine (two would share the CPUs).
exec 9>/tmp/ringress-bench.lock
if ! flock -n 9; then
	echo "bench: another bench/run.sh is running; waiting for it" >&2
	flock 9
fi

tmp="$(mktemp -d -t ringress-bench.XXXXXX)"
pids=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 1 30); do
		local alive=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "${BENCH_KEEP_TMP:-}" ]; then echo "bench: kept $tmp" >&2; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stops one process started here (by pid) and forgets it.
stop() {
	local p="$1"
	kill -TERM "$p" 2>/dev/null || true
	for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	local keep=()
	for q in "${pids[@]}"; do [ "$q" != "$p" ] && keep+=("$q"); done
	pids=("${keep[@]+"${keep[@]}"}")
}

# Fails when something already listens on the port (it would be measured
# instead of the process about to start).
port_free() {
	if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
		echo "bench: port $1 is already in use (set BENCH_PORT_BASE)" >&2
		return 1
	fi
}
for p in 0 1 2 3 11; do port_free $((base + p)); done

wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "bench: nothing listens on 127.0.0.1:$1 after 5 s" >&2
	return 1
}

user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
render() { # template port out
	sed -e "s|@TMP@|$tmp|g" -e "s|@PORT@|$2|g" -e "s|@BACKEND_PORT@|$backend_port|g" \
		-e "s|@USER@|$user_line|g" "$1" >"$3"
}

# CPU ticks (utime+stime) of a process, its threads and its children.
cpu_ticks() {
	local total=0 p
	for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		if [ -r "/proc/$p/stat" ]; then
			# Fields after the ")" of comm: utime is the 12th, stime the 13th.
			local rest
			rest="$(sed 's/^.*) //' "/proc/$p/stat")"
			set -- $rest
			total=$((total + ${12} + ${13}))
		fi
	done
	echo "$total"
}
clk_tck="$(getconf CLK_TCK)"

backend_port=$base
mkdir -p "$tmp/www"
# 100 bytes exactly.
printf '%099d\n' 0 | tr 0 x >"$tmp/www/index.html"

render "$here/nginx-backend.conf.in" "$backend_port" "$tmp/backend.conf"
"${load_cpu[@]}" nginx -p "$tmp" -e "$tmp/backend-error.log" -c "$tmp/backend.conf" >"$tmp/backend.out" 2>&1 9>&- &
pids+=($!)
wait_port "$backend_port"
size="$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$backend_port/index.html")"
[ "$size" = 100 ] || { echo "bench: backend serves $size bytes, expected 100" >&2; exit 1; }

results=()  # "name|req/s|p99|cpu_us|errors"

# Runs wrk against port for the proxy pid (empty: no CPU accounting).
measure() { # name port pid
	local name="$1" port="$2" pid="$3" url="http://127.0.0.1:$2/index.html"
	"${load_cpu[@]}" wrk -t1 -c"$conns" -d1s "$url" >/dev/null 2>&1 || true # warm-up
	local before=0 after=0
	[ -n "$pid" ] && before="$(cpu_ticks "$pid")"
	"${load_cpu[@]}" wrk -t1 -c"$conns" -d"${duration}s" --latency "$url" >"$tmp/wrk-$name.txt" 2>&1 || true
	[ -n "$pid" ] && after="$(cpu_ticks "$pid")"
	local rps p99 reqs errs cpu_us
	rps="$(awk '/^Requests\/sec:/{print $2}' "$tmp/wrk-$name.txt")"
	p99="$(awk '$1=="99%"{print $2}' "$tmp/wrk-$name.txt")"
	reqs="$(awk '/requests in/{print $1}' "$tmp/wrk-$name.txt")"
	errs="$(awk '/Non-2xx or 3xx responses:/{n+=$NF} /Socket errors:/{gsub(",","");n+=$4+$6+$8+$10} END{print n+0}' \
		"$tmp/wrk-$name.txt")"
	if [ -z "$rps" ] || [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
		echo "bench: $name: wrk produced no result:" >&2
		cat "$tmp/wrk-$name.txt" >&2
		results+=("$name|0|-|-|all")
		return
	fi
	if [ -n "$pid" ]; then
		cpu_us="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$reqs" 'BEGIN{printf "%.1f", t*1e6/hz/n}')"
	else
		cpu_us="-"
	fi
	results+=("$name|$rps|$p99|$cpu_us|$errs")
	echo "bench: $name: $rps req/s, p99 $p99, $cpu_us CPU µs/request, $errs errors" >&2
}

want() { [[ ",$only," == *",$1,"* ]]; }

if want direct; then
	measure "nginx-direct" "$backend_port" ""
fi

if want ringress; then
	if [ -x "$RINGRESS_BIN" ]; then
		port=$((base + 1))
		admin=$((base + 11))
		mkdir -p "$tmp/m"
		cat >"$tmp/m/bench.yaml" <<EOF
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: ringress
spec:
  controller: ringress.io/ingress-controller
---
apiVersion: v1
kind: Service
metadata: {name: origin, namespace: bench}
spec:
  ports: [{name: http, port: 80, targetPort: $backend_port}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: origin-1
  namespace: bench
  labels: {kubernetes.io/service-name: origin}
addressType: IPv4
ports: [{name: http, port: $backend_port}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {ready: true}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: origin, namespace: bench}
spec:
  ingressClassName: ringress
  rules:
    - http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: origin, port: {number: 80}}}
EOF
		"${proxy_cpu[@]}" "$RINGRESS_BIN" --manifests "$tmp/m" --bind 127.0.0.1 --http-port "$port" \
			--admin-port "$admin" --shards 1 --log-level warn >"$tmp/ringress.log" 2>&1 9>&- &
		rp=$!
		pids+=("$rp")
		wait_port "$port"
		for _ in $(seq 1 100); do
			curl -fs -o /dev/null "http://127.0.0.1:$admin/readyz" && break
			sleep 0.05
		done
		code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/index.html")"
		if [ "$code" != 200 ]; then
			echo "bench: ringress answers $code on /index.html; log:" >&2
			tail -20 "$tmp/ringress.log" >&2
		fi
		measure "ringress" "$port" "$rp"
		stop "$rp"
	else
		echo "bench: $RINGRESS_BIN not found: skipping ringress (run zig build)" >&2
	fi
fi

if want haproxy; then
	port=$((base + 2))
	render "$here/haproxy.cfg.in" "$port" "$tmp/haproxy.cfg"
	haproxy -c -q -f "$tmp/haproxy.cfg" || { echo "bench: invalid haproxy config" >&2; exit 1; }
	"${proxy_cpu[@]}" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 9>&- &
	hp=$!
	pids+=("$hp")
	wait_port "$port"
	measure "haproxy" "$port" "$hp"
	stop "$hp"
fi

if want nginx; then
	port=$((base + 3))
	render "$here/nginx.conf.in" "$port" "$tmp/nginx-proxy.conf"
	"${proxy_cpu[@]}" nginx -p "$tmp" -e "$tmp/nginx-proxy-error.log" -c "$tmp/nginx-proxy.conf" \
		>"$tmp/nginx-proxy.out" 2>&1 9>&- &
	np=$!
	pids+=("$np")
	wait_port "$port"
	measure "nginx" "$port" "$np"
	stop "$np"
fi

# ---- the table ----
ring_rps="" ring_cpu=""
for r in "${results[@]}"; do
	IFS='|' read -r n rps p99 cpu errs <<<"$r"
	if [ "$n" = ringress ]; then ring_rps="$rps"; ring_cpu="$cpu"; fi
done
ratio() { # a b -> a/b with 2 decimals, "-" when unknown
	awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || a == "-" || b == "-" || b+0 == 0) print "-"; else printf "%.2f", a/b }'
}
echo
echo "wrk -t1 -c$conns -d${duration}s, ~100 B file; proxy on CPU 0, origin and wrk on CPU 1 (pinning: $([ "$pin" = 1 ] && echo on || echo off))"
echo
echo "| proxy | req/s | p99 latency | CPU µs/request | errors | ringress req/s ratio | ringress CPU ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for r in "${results[@]}"; do
	IFS='|' read -r n rps p99 cpu errs <<<"$r"
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$rps" "$p99" "$cpu" "$errs" \
		"$(ratio "$ring_rps" "$rps")" "$(ratio "$ring_cpu" "$cpu")"
done
echo
echo "ratios: ringress divided by the row (req/s: above 1 is faster; CPU: below 1 is cheaper)."
