#!/usr/bin/env bash
# bench/run.sh - wrk against ringress, HAProxy and nginx proxying to one
# nginx origin serving a ~100-byte file; prints a markdown table.
#
#   zig build bench                 (5 s per proxy)
#   zig build bench -- --quick      (2 s per proxy)
#   bash bench/run.sh [--quick] [--duration S] [--connections N] [--only LIST] [--no-pin]
#
#   --only LIST   comma-separated subset of: direct,ringress,haproxy,nginx
#   --cases LIST  comma-separated subset of: small,small16,small256,close,64k,1m,100m
#                 (default: all; --quick: small only)
#   --no-pin      do not pin processes to CPUs (machines with one CPU)
#
# For the 64k, 1m and 100m cases ringress also runs with --splice-mode poll
# and uring (rows ringress-poll, ringress-uring), and HAProxy has
# "option splice-auto".
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
cases=""
base="${BENCH_PORT_BASE:-18080}"
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) duration=2; cases="${cases:-small}" ;;
	--duration) duration="$2"; shift ;;
	--connections) conns="$2"; shift ;;
	--only) only="$2"; shift ;;
	--cases) cases="$2"; shift ;;
	--no-pin) pin=0 ;;
	-h | --help) sed -n '2,24p' "$0"; exit 0 ;;
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
for p in 0 1 2 3 4 5 11 14 15; do port_free $((base + p)); done

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
head -c 65536 /dev/urandom >"$tmp/www/64k.bin"
head -c 1048576 /dev/urandom >"$tmp/www/1m.bin"
head -c 104857600 /dev/zero >"$tmp/www/100m.bin"

render "$here/nginx-backend.conf.in" "$backend_port" "$tmp/backend.conf"
"${load_cpu[@]}" nginx -p "$tmp" -e "$tmp/backend-error.log" -c "$tmp/backend.conf" >"$tmp/backend.out" 2>&1 9>&- &
pids+=($!)
wait_port "$backend_port"
size="$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$backend_port/index.html")"
[ "$size" = 100 ] || { echo "bench: backend serves $size bytes, expected 100" >&2; exit 1; }

cases="${cases:-small,small16,small256,close,64k,1m,100m}"
results=() # "case|name|req/s|MB/s|p50|p99|cpu_us|errors"

# Runs wrk for one case against port, for the proxy pid (empty: no CPU
# accounting).
measure() { # case name port pid
	local c="$1" name="$2" port="$3" pid="$4" path="/index.html" n="$conns" extra=() d="$duration"
	case "$c" in
	small) n=64 ;;
	small16) n=16 ;;
	small256) n=256 ;;
	close) n=16; extra=(-H "Connection: close") ;;
	64k) path=/64k.bin; n=16 ;;
	1m) path=/1m.bin; n=8 ;;
	100m) path=/100m.bin; n=2; d=$((duration * 2)) ;;
	esac
	local url="http://127.0.0.1:$port$path"
	"${load_cpu[@]}" wrk -t1 -c"$n" -d1s "${extra[@]+"${extra[@]}"}" "$url" >/dev/null 2>&1 || true # warm-up
	local before=0 after=0
	[ -n "$pid" ] && before="$(cpu_ticks "$pid")"
	"${load_cpu[@]}" wrk -t1 -c"$n" -d"${d}s" --latency "${extra[@]+"${extra[@]}"}" "$url" \
		>"$tmp/wrk-$c-$name.txt" 2>&1 || true
	[ -n "$pid" ] && after="$(cpu_ticks "$pid")"
	local f="$tmp/wrk-$c-$name.txt" rps mbs p50 p99 reqs errs cpu_us
	rps="$(awk '/^Requests\/sec:/{print $2}' "$f")"
	mbs="$(awk '/^Transfer\/sec:/{v=$2; m=1/1048576; if (v ~ /GB/) m=1024; else if (v ~ /MB/) m=1; else if (v ~ /KB/) m=1/1024; sub(/[A-Za-z]+$/, "", v); printf "%.1f", v*m}' "$f")"
	p50="$(awk '$1=="50%"{print $2}' "$f")"
	p99="$(awk '$1=="99%"{print $2}' "$f")"
	reqs="$(awk '/requests in/{print $1}' "$f")"
	errs="$(awk '/Non-2xx or 3xx responses:/{n+=$NF} /Socket errors:/{gsub(",","");n+=$4+$6+$8+$10} END{print n+0}' "$f")"
	if [ -z "$rps" ] || [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
		echo "bench: $c/$name: wrk produced no result:" >&2
		cat "$f" >&2
		results+=("$c|$name|0|0|-|-|-|all")
		return
	fi
	if [ -n "$pid" ]; then
		cpu_us="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$reqs" 'BEGIN{printf "%.1f", t*1e6/hz/n}')"
	else
		cpu_us="-"
	fi
	results+=("$c|$name|$rps|$mbs|$p50|$p99|$cpu_us|$errs")
	echo "bench: $c/$name: $rps req/s, $mbs MB/s, p99 $p99, $cpu_us CPU µs/request, $errs errors" >&2
}

want() { [[ ",$only," == *",$1,"* ]]; }
large() { [[ "$1" == 64k || "$1" == 1m || "$1" == 100m ]]; }

start_ringress() { # port admin extra-args...
	local port="$1" admin="$2" code
	shift 2
	mkdir -p "$tmp/m"
	cat >"$tmp/m/bench.yaml" <<YAML
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
YAML
	"${proxy_cpu[@]}" "$RINGRESS_BIN" --manifests "$tmp/m" --bind 127.0.0.1 --http-port "$port" \
		--admin-port "$admin" --https-port 0 --shards 1 --log-level warn --proxy-body-size 0 "$@" \
		>"$tmp/ringress-$port.log" 2>&1 9>&- &
	started=$!
	pids+=("$started")
	wait_port "$port"
	for _ in $(seq 1 100); do
		curl -fs -o /dev/null "http://127.0.0.1:$admin/readyz" && break
		sleep 0.05
	done
	code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/index.html")"
	if [ "$code" != 200 ]; then
		echo "bench: ringress answers $code on /index.html; log:" >&2
		tail -20 "$tmp/ringress-$port.log" >&2
	fi
}

# Every proxy starts once and idles while the others are measured.
declare -A ports=() procs=()
if want ringress; then
	if [ -x "$RINGRESS_BIN" ]; then
		start_ringress $((base + 1)) $((base + 11))
		ports[ringress]=$((base + 1))
		procs[ringress]=$started
		if [[ ",$cases," == *,64k,* || ",$cases," == *,1m,* || ",$cases," == *,100m,* ]]; then
			start_ringress $((base + 4)) $((base + 14)) --splice-mode poll --splice-threshold 64k
			ports[ringress-poll]=$((base + 4))
			procs[ringress-poll]=$started
			start_ringress $((base + 5)) $((base + 15)) --splice-mode uring --splice-threshold 64k
			ports[ringress-uring]=$((base + 5))
			procs[ringress-uring]=$started
		fi
	else
		echo "bench: $RINGRESS_BIN not found: skipping ringress (run zig build)" >&2
	fi
fi
if want haproxy; then
	port=$((base + 2))
	render "$here/haproxy.cfg.in" "$port" "$tmp/haproxy.cfg"
	haproxy -c -q -f "$tmp/haproxy.cfg" || { echo "bench: invalid haproxy config" >&2; exit 1; }
	"${proxy_cpu[@]}" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 9>&- &
	procs[haproxy]=$!
	pids+=("$!")
	wait_port "$port"
	ports[haproxy]=$port
fi
if want nginx; then
	port=$((base + 3))
	render "$here/nginx.conf.in" "$port" "$tmp/nginx-proxy.conf"
	"${proxy_cpu[@]}" nginx -p "$tmp" -e "$tmp/nginx-proxy-error.log" -c "$tmp/nginx-proxy.conf" \
		>"$tmp/nginx-proxy.out" 2>&1 9>&- &
	procs[nginx]=$!
	pids+=("$!")
	wait_port "$port"
	ports[nginx]=$port
fi

IFS=',' read -r -a case_list <<<"$cases"
for c in "${case_list[@]}"; do
	if want direct; then measure "$c" "nginx-direct" "$backend_port" ""; fi
	for name in ringress ringress-poll ringress-uring haproxy nginx; do
		[ -n "${ports[$name]:-}" ] || continue
		if [[ "$name" == ringress-* ]] && ! large "$c"; then continue; fi
		measure "$c" "$name" "${ports[$name]}" "${procs[$name]}"
	done
done

# ---- the tables ----
ratio() { # a b -> a/b with 2 decimals, "-" when unknown
	awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || a == "-" || b == "-" || b+0 == 0) print "-"; else printf "%.2f", a/b }'
}
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(nproc) CPUs"
echo "wrk -t1, ${duration}s per case (100m: $((duration * 2))s); proxy on CPU 0, origin (nginx) and wrk on CPU 1 (pinning: $([ "$pin" = 1 ] && echo on || echo off))"
for c in "${case_list[@]}"; do
	ring_rps="" ring_cpu=""
	for r in "${results[@]}"; do
		IFS='|' read -r rc n rps mbs p50 p99 cpu errs <<<"$r"
		if [ "$rc" = "$c" ] && [ "$n" = ringress ]; then
			ring_rps="$rps"
			ring_cpu="$cpu"
		fi
	done
	echo
	echo "**$c**"
	echo
	echo "| proxy | req/s | MB/s | p50 | p99 | CPU µs/request | errors | ringress req/s ratio | ringress CPU ratio |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for r in "${results[@]}"; do
		IFS='|' read -r rc n rps mbs p50 p99 cpu errs <<<"$r"
		[ "$rc" = "$c" ] || continue
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$rps" "$mbs" "$p50" "$p99" "$cpu" \
			"$errs" "$(ratio "$ring_rps" "$rps")" "$(ratio "$ring_cpu" "$cpu")"
	done
done
echo
echo "ratios: ringress (default buffer path) divided by the row (req/s: above 1 is faster; CPU: below 1 is cheaper)."
