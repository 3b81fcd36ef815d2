#!/usr/bin/env bash
# bench/run.sh - wrk (and h2load --h1) against ringress, HAProxy and nginx
# proxying to one nginx origin; prints markdown tables.
#
#   zig build bench                 (ReleaseFast builds; 5 s per proxy and case, about 10 min)
#   zig build bench -- --quick      (the small case, 2 s per proxy, and a short micro)
#   bash bench/run.sh [--quick] [--duration S] [--connections N] [--only LIST]
#                     [--cases LIST] [--no-pin] [--chart] [--doc] [--rounds N]
#                     [--syscall-window S] [--backend nginx|echo]
#                     [--proxy-cpu PCT]
#
#   --only LIST   comma-separated subset of: direct,ringress,haproxy,nginx
#   --cases LIST  comma-separated subset of: small,small16,small256,
#                 small-cpu50,small-h2load,small16-h2load,small256-h2load,
#                 post1k,close,
#                 64k,1m,100m,idle10k,micro (default: all; --quick: small
#                 and a short micro)
#   --no-pin      do not pin processes to CPUs (machines with one CPU)
#   --chart       also draw requests/s and CPU us/request of the small cases
#                 into docs/benchmarks.png (gnuplot; skipped when absent)
#   --rounds N    run every case N times, rotating the order of the proxies
#                 each round (the first runs of a series fare differently on
#                 this shared machine); rows show the round with the median
#                 req/s, the median CPU µs/request and the errors of all
#                 rounds; syscalls are counted in the first round only; the
#                 ratio columns are medians over rounds of ratios within
#                 a round
#   --doc         also write the report (date, kernel, CPU, command, tables)
#                 into docs/benchmarks.md, between its two
#                 "bench/run.sh --doc" markers
#   --syscall-window S  length of the separate strace run (default 2, quick 1)
#   --proxy-cpu PCT  limit each proxy to PCT % of its CPU (a cgroup CPU quota
#                 in 10 ms periods; root): the proxy becomes the bottleneck
#                 instead of the origin and load generator, and requests/s
#                 compare what each proxy does with the same CPU time
#   --backend B   the origin shared by all proxies: nginx (default; static
#                 files, one worker) or echo (the project's ringress-echo,
#                 RINGRESS_ECHO, one thread per connection with blocking
#                 sockets: it costs CPU 1 far less per request than nginx, so
#                 the proxy, not the origin, sets the pace; bodies are
#                 generated: /_/bytes/N)
#
# Cases: small GET (100 B) keep-alive at 64/16/256 connections with wrk;
# small-cpu50: the small case with each proxy held to half of CPU 0 while it
# is measured (moved into a cgroup with a 5 ms per 10 ms CPU quota, then back;
# root; skipped otherwise): the proxy sets the pace, so requests/s compare
# what the proxies do per unit of CPU, where in the small case CPU 1 (wrk and
# the origin) sets it for all; no nginx-direct row (no proxy to hold) and no
# syscall count (the small case has it); under --proxy-cpu PCT every case is
# held to PCT %, this one included;
# the same with h2load --h1 (*-h2load; skipped when h2load is absent), 1 KiB POST
# keep-alive (post1k, bench/post1k.lua; the origin answers POSTs 200),
# Connection: close, 64 KiB, 1 MiB and 100 MiB responses, and idle10k: 10,000
# idle keep-alive client connections (bench/idle.py) to a fresh process of
# each proxy, reporting resident memory per connection ((RSS at 10k - RSS at
# 1k) / 9k; nginx: master + worker). micro: bench/micro.c (ringress-micro,
# built ReleaseFast by `zig build bench`; RINGRESS_MICRO): router lookups over
# 10,000 hosts x 10 paths, snapshot compile time and heap for 10,000
# Ingresses, SPSC queue throughput between two threads, llhttp parse + header
# rewrite per request.
# For 64k, 1m and 100m ringress also runs with --splice-mode off and uring
# (rows ringress-buffers, ringress-uring; the default is poll), and HAProxy
# has "option splice-auto".
#
# Placement (2 CPUs): the proxy under test on CPU 0; the origin and the load
# generator on CPU 1 (-t1). Each proxy runs alone, one after another, with a
# 1 s warm-up before the measured run. CPU time of the proxy is utime+stime
# of its process (all threads) and its children, read from /proc before and
# after the run. Syscalls per request come from a separate short run under
# strace -c -f (strace slows the proxy, so not in the timed run): syscalls
# counted while the load runs divided by the requests it completed.
# Instructions per request come from perf stat -e instructions over the timed
# run where the CPU counter is available ("-" otherwise). Everything
# (configs, logs, pid files) lives in a mktemp directory, removed on exit;
# every process started is stopped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
RINGRESS_BIN="${RINGRESS_BIN:-$root/zig-out/bin/ringress}"
RINGRESS_MICRO="${RINGRESS_MICRO:-$root/zig-out/bench/ringress-micro}"
RINGRESS_ECHO="${RINGRESS_ECHO:-$root/zig-out/bin/ringress-echo}"

duration=5
quick=0
conns=50
only="direct,ringress,haproxy,nginx"
pin=1
cases=""
chart=0
doc=0
rounds=1
window=""
backend=nginx
proxy_pct=""
argv=("$@")
base="${BENCH_PORT_BASE:-18080}"
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1; duration=2; cases="${cases:-small,micro}"; window="${window:-1}" ;;
	--duration) duration="$2"; shift ;;
	--connections) conns="$2"; shift ;;
	--only) only="$2"; shift ;;
	--cases) cases="$2"; shift ;;
	--no-pin) pin=0 ;;
	--chart) chart=1 ;;
	--doc) doc=1 ;;
	--rounds) rounds="$2"; shift ;;
	--syscall-window) window="$2"; shift ;;
	--backend) backend="$2"; shift ;;
	--proxy-cpu) proxy_pct="$2"; shift ;;
	-h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
	*) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

window="${window:-2}"
[ -z "$proxy_pct" ] || { [[ "$proxy_pct" =~ ^[1-9][0-9]?$ ]] && [ "$proxy_pct" -le 100 ]; } ||
	{ echo "bench: --proxy-cpu wants a percentage from 1 to 100, not $proxy_pct" >&2; exit 2; }
case "$backend" in
nginx | echo) ;;
*) echo "bench: --backend wants nginx or echo, not $backend" >&2; exit 2 ;;
esac
[ "$backend" = nginx ] || [ -x "$RINGRESS_ECHO" ] ||
	{ echo "bench: --backend echo needs $RINGRESS_ECHO (run zig build, or set RINGRESS_ECHO)" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "bench: --rounds wants a positive integer, not $rounds" >&2; exit 2; }
bench_name=bench bench_tmp_prefix=ringress-bench
. "$here/lib.sh"
bench_require wrk nginx haproxy curl python3
have() { command -v "$1" >/dev/null; }
have strace || echo "bench: strace not found: no syscalls per request" >&2
# perf stat needs the CPU's instruction counter (absent in many VMs).
perf_ok=0
if have perf && perf stat -x, -e instructions true 2>&1 | grep -q '^[0-9][0-9]*,'; then perf_ok=1; fi
bench_pin
bench_begin
[ -n "$proxy_pct" ] && bench_quota "$proxy_pct"
for p in 0 1 2 3 4 5 6 7 8 11 14 15 16; do port_free $((base + p)); done

render_setup


backend_port=$base
mkdir -p "$tmp/www"
# 100 bytes exactly.
printf '%099d\n' 0 | tr 0 x >"$tmp/www/index.html"
head -c 65536 /dev/urandom >"$tmp/www/64k.bin"
head -c 1048576 /dev/urandom >"$tmp/www/1m.bin"
head -c 104857600 /dev/zero >"$tmp/www/100m.bin"

if [ "$backend" = echo ]; then
	"${load_cpu[@]}" "$RINGRESS_ECHO" --listen "127.0.0.1:$backend_port" >"$tmp/backend.out" 2>&1 9>&- &
else
	render "$here/nginx-backend.conf.in" "$backend_port" "$tmp/backend.conf"
	"${load_cpu[@]}" nginx -p "$tmp" -e "$tmp/backend-error.log" -c "$tmp/backend.conf" >"$tmp/backend.out" 2>&1 9>&- &
fi
pids+=($!)
wait_port "$backend_port"
# The origin's path for a body of $1 bytes.
body_path() {
	if [ "$backend" = echo ]; then
		echo "/_/bytes/$1"
	else
		case "$1" in 100) echo /index.html ;; 65536) echo /64k.bin ;; 1048576) echo /1m.bin ;; *) echo /100m.bin ;; esac
	fi
}
size="$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$backend_port$(body_path 100)")"
[ "$size" = 100 ] || { echo "bench: backend serves $size bytes, expected 100" >&2; exit 1; }
code="$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$here/post1k.lua" "http://127.0.0.1:$backend_port/")"
[ "$code" = 200 ] || { echo "bench: backend answers $code to a POST, expected 200" >&2; exit 1; }

all_cases="small,small16,small256,small-cpu50,small-h2load,small16-h2load,small256-h2load,post1k,close,64k,1m,100m,idle10k,micro"
cases="${cases:-$all_cases}"
IFS=',' read -r -a case_list <<<"$cases"
for c in "${case_list[@]}"; do
	[[ ",$all_cases," == *",$c,"* ]] || { echo "bench: unknown case $c (see --help)" >&2; exit 2; }
done
want() { [[ ",$only," == *",$1,"* ]]; }
large() { [[ "$1" == 64k || "$1" == 1m || "$1" == 100m ]]; }
has_case() { [[ " ${case_list[*]-} " == *" $1 "* ]]; }
drop_case() { # case reason
	local keep=() c
	echo "bench: $2: skipping $1" >&2
	for c in "${case_list[@]}"; do [ "$c" = "$1" ] || keep+=("$c"); done
	case_list=("${keep[@]+"${keep[@]}"}")
}
# small-cpu50 needs a cgroup of its own, unless --proxy-cpu holds every case.
held=0
if has_case small-cpu50 && [ -z "$proxy_pct" ]; then
	if quota_make 50; then held=1; else drop_case small-cpu50 "no CPU quota"; fi
fi
for c in "${case_list[@]}"; do
	if [[ "$c" == *-h2load ]] && ! have h2load; then
		drop_case "$c" "h2load not found (apt-get install nghttp2-client)"
	fi
done
results=() # "case|name|req/s|MB/s|p50|p99|cpu_us|errors|syscalls/req|instructions/req|sleeps/req|load-CPU us/req"
idle_results=() # "name|rss 1k KiB|rss 10k KiB|KiB per connection"

# Runs the load generator of case c against port for d seconds, output in
# file f (wrk, or h2load for the *-h2load cases; -t1 on the load CPU).
load() { # case port seconds file [--latency]
	local c="$1" port="$2" d="$3" f="$4" lat="${5:-}" path n="$conns" extra=()
	path="$(body_path 100)"
	case "$c" in
	small | small-h2load | small-cpu50) n=64 ;;
	small16 | small16-h2load) n=16 ;;
	small256 | small256-h2load) n=256 ;;
	post1k) n=64; extra=(-s "$here/post1k.lua") ;;
	close) n=16; extra=(-H "Connection: close") ;;
	64k) path="$(body_path 65536)"; n=16 ;;
	1m) path="$(body_path 1048576)"; n=8 ;;
	100m) path="$(body_path 104857600)"; n=2 ;;
	esac
	local url="http://127.0.0.1:$port$path"
	if [[ "$c" == *-h2load ]]; then
		local logf=()
		[ -n "$lat" ] && logf=(--log-file "$f.log")
		loadgen "$d" h2load --h1 -t1 -c"$n" -D"$d" "${logf[@]+"${logf[@]}"}" "$url" >"$f" 2>&1 || true
	else
		local l=()
		[ -n "$lat" ] && l=(--latency)
		loadgen "$d" wrk -t1 -c"$n" -d"${d}s" "${l[@]+"${l[@]}"}" "${extra[@]+"${extra[@]}"}" "$url" \
			>"$f" 2>&1 || true
	fi
}

# Completed requests in a load output file (wrk or h2load).
load_requests() { # case file
	if [[ "$1" == *-h2load ]]; then
		awk '/^requests:/{for (i = 1; i <= NF; i++) if ($(i+1) ~ /^done/) print $i}' "$2"
	else
		awk '/requests in/{print $1}' "$2"
	fi
}

# Syscalls per request of the proxy (pid and its children) in a separate
# run of $window seconds under strace -c -f; "-" without strace.
syscalls_per_request() { # case port pid name
	local c="$1" port="$2" pid="$3" name="$4" args=() p sp calls reqs
	have strace || { echo "-"; return; }
	for p in $(proc_tree "$pid"); do args+=(-p "$p"); done
	local out="$tmp/strace-$c-$name.txt" err="$tmp/strace-$c-$name.err"
	strace -c -f -o "$out" "${args[@]}" 2>"$err" 9>&- &
	sp=$!
	pids+=("$sp")
	for _ in $(seq 1 100); do
		grep -q attached "$err" 2>/dev/null && break
		sleep 0.05
	done
	sleep 0.2
	load "$c" "$port" "$window" "$tmp/load-strace-$c-$name.txt"
	kill -INT "$sp" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$sp" 2>/dev/null || break; sleep 0.05; done
	stop "$sp"
	calls="$(awk '$NF == "total" {print $4}' "$out" 2>/dev/null)"
	reqs="$(load_requests "$c" "$tmp/load-strace-$c-$name.txt")"
	if [ -z "$calls" ] || [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
		echo "bench: $c/$name: no strace result ($(head -c 300 "$err" | tr '\n' ' '))" >&2
		echo "-"
		return
	fi
	awk -v a="$calls" -v b="$reqs" 'BEGIN{printf "%.2f", a/b}'
}

# Runs one case against port, for the proxy pid (empty: no CPU, syscall or
# instruction accounting).
measure() { # case name port pid [round]
	local c="$1" name="$2" port="$3" pid="$4" round="${5:-0}" d="$duration"
	[ "$c" = 100m ] && d=$((duration * 2))
	load "$c" "$port" 1 "$tmp/warmup.txt" # warm-up
	local before=0 after=0 pp=() perfp=""
	if [ -n "$pid" ] && [ "$perf_ok" = 1 ]; then
		perf stat -x, -e instructions -o "$tmp/perf-$c-$name.txt" \
			-p "$(proc_tree "$pid" | paste -sd, -)" 9>&- >/dev/null 2>&1 &
		perfp=$!
		pids+=("$perfp")
		sleep 0.2
	fi
	local sl_before=0 sl_after=0 ld_before ld_after
	[ -n "$pid" ] && { before="$(cpu_ticks "$pid")"; sl_before="$(sleeps "$pid")"; }
	ld_before="$(cpu_busy_ticks 1)"
	local f="$tmp/load-$c-$name.txt"
	load "$c" "$port" "$d" "$f" --latency
	ld_after="$(cpu_busy_ticks 1)"
	[ -n "$pid" ] && { after="$(cpu_ticks "$pid")"; sl_after="$(sleeps "$pid")"; }
	if [ -n "$perfp" ]; then
		kill -INT "$perfp" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$perfp" 2>/dev/null || break; sleep 0.05; done
		stop "$perfp"
	fi
	local rps mbs p50 p99 reqs errs cpu_us sc="-" ins="-" sl="-" ld="-"
	reqs="$(load_requests "$c" "$f")"
	if [[ "$c" == *-h2load ]]; then
		# finished in 5.00s, 38000.00 req/s, 5.12MB/s
		rps="$(awk '/^finished in/{gsub(",", ""); print $4}' "$f")"
		mbs="$(awk '/^finished in/{v=$6; m=1/1048576; if (v ~ /GB/) m=1024; else if (v ~ /MB/) m=1; else if (v ~ /KB/) m=1/1024; sub(/[A-Za-z\/]+$/, "", v); printf "%.1f", v*m}' "$f")"
		errs="$(awk '/^requests:/{for (i = 1; i <= NF; i++) if ($(i+1) ~ /^(failed|errored|timeout)/) n += $i}
			/^status codes:/{gsub(",", ""); n += $7 + $9} END{print n+0}' "$f")"
		p50="-" p99="-"
		if [ -s "$f.log" ]; then
			# Third column: microseconds until the end of the response.
			read -r p50 p99 < <(cut -f3 "$f.log" | sort -n | awk '
				function q(p,  i) { i = int(NR * p + 0.999999); if (i < 1) i = 1; return v[i] / 1000 }
				{ v[NR] = $1 } END { if (NR) printf "%.2fms %.2fms\n", q(0.5), q(0.99); else print "- -" }')
		fi
	else
		rps="$(awk '/^Requests\/sec:/{print $2}' "$f")"
		mbs="$(awk '/^Transfer\/sec:/{v=$2; m=1/1048576; if (v ~ /GB/) m=1024; else if (v ~ /MB/) m=1; else if (v ~ /KB/) m=1/1024; sub(/[A-Za-z]+$/, "", v); printf "%.1f", v*m}' "$f")"
		p50="$(awk '$1=="50%"{print $2}' "$f")"
		p99="$(awk '$1=="99%"{print $2}' "$f")"
		errs="$(awk '/Non-2xx or 3xx responses:/{n+=$NF} /Socket errors:/{gsub(",","");n+=$4+$6+$8+$10} END{print n+0}' "$f")"
	fi
	if [ -z "$rps" ] || [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
		echo "bench: $c/$name: the load generator produced no result:" >&2
		cat "$f" >&2
		results+=("$c|$name|0|0|-|-|-|all|-|-|-|-")
		return
	fi
	# CPU 1 carries the origin and the load generator (and, on loopback, the
	# kernel's delivery of what they send): what the proxy costs them.
	[ "$pin" = 1 ] && ld="$(awk -v t=$((ld_after - ld_before)) -v hz="$clk_tck" -v n="$reqs" 'BEGIN{printf "%.1f", t*1e6/hz/n}')"
	if [ -n "$pid" ]; then
		cpu_us="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$reqs" 'BEGIN{printf "%.1f", t*1e6/hz/n}')"
		sl="$(awk -v s=$((sl_after - sl_before)) -v n="$reqs" 'BEGIN{printf "%.2f", s/n}')"
		if [ -n "$perfp" ]; then
			ins="$(awk -F, -v n="$reqs" '$3 ~ /^instructions/ && $1 ~ /^[0-9]+$/ {s += $1} END{if (s) printf "%.0f", s/n; else print "-"}' "$tmp/perf-$c-$name.txt")"
		fi
		[ "$round" = 0 ] && [ "$c" != small-cpu50 ] && sc="$(syscalls_per_request "$c" "$port" "$pid" "$name")"
	else
		cpu_us="-"
	fi
	results+=("$c|$name|$rps|$mbs|$p50|$p99|$cpu_us|$errs|$sc|$ins|$sl|$ld")
	echo "bench: $c/$name: $rps req/s, $mbs MB/s, p99 $p99, $cpu_us CPU µs/request, $ld load-CPU µs/request, $sl sleeps/request, $sc syscalls/request, $ins instructions/request, $errs errors" >&2
}

start_ringress() { # port admin extra-args...
	local port="$1" admin="$2" code
	shift 2
	mkdir -p "$tmp/m"
	{
		origin_manifests "$backend_port"
		origin_ingress
	} >"$tmp/m/bench.yaml"
	"${proxy_cpu[@]}" "$RINGRESS_BIN" --manifests "$tmp/m" --bind 127.0.0.1 --http-port "$port" \
		--admin-port "$admin" --https-port 0 "${ringress_bench_flags[@]}" "$@" \
		>"$tmp/ringress-$port.log" 2>&1 9>&- &
	started=$!
	pids+=("$started")
	wait_ready "$port" "$admin"
	code="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/index.html")"
	if [ "$code" != 200 ]; then
		echo "bench: ringress answers $code on /index.html; log:" >&2
		tail -20 "$tmp/ringress-$port.log" >&2
	fi
}

check_post() { # name port
	local code
	code="$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$here/post1k.lua" "http://127.0.0.1:$2/")"
	[ "$code" = 200 ] || echo "bench: $1 answers $code to a POST, expected 200" >&2
}

# Every proxy starts once and idles while the others are measured.
declare -A ports=() procs=()
# The micro-benchmarks first, on a quiet machine (the load cases leave the
# origin and sockets behind them busy for a while).
if has_case micro; then
	if [ -x "$RINGRESS_MICRO" ]; then
		micro_args=()
		[ "$quick" = 1 ] && micro_args=(--quick)
		"$RINGRESS_MICRO" "${micro_args[@]+"${micro_args[@]}"}" >"$tmp/micro.md" 9>&- ||
			{ echo "bench: ringress-micro failed" >&2; exit 1; }
		echo "bench: micro done" >&2
	else
		echo "bench: $RINGRESS_MICRO not found: skipping micro (run zig build bench)" >&2
		echo "(not run: $RINGRESS_MICRO not found)" >"$tmp/micro.md"
	fi
fi
load_cases=()
for c in "${case_list[@]+"${case_list[@]}"}"; do [ "$c" = idle10k ] || [ "$c" = micro ] || load_cases+=("$c"); done
any_large=0
for c in "${load_cases[@]+"${load_cases[@]}"}"; do large "$c" && any_large=1; done
if [ "${#load_cases[@]}" -gt 0 ]; then
	if want ringress; then
		if [ -x "$RINGRESS_BIN" ]; then
			start_ringress $((base + 1)) $((base + 11))
			ports[ringress]=$((base + 1))
			procs[ringress]=$started
			if [ "$any_large" = 1 ]; then
				start_ringress $((base + 4)) $((base + 14)) --splice-mode off
				ports[ringress-buffers]=$((base + 4))
				procs[ringress-buffers]=$started
				start_ringress $((base + 5)) $((base + 15)) --splice-mode uring --splice-threshold 64k
				ports[ringress-uring]=$((base + 5))
				procs[ringress-uring]=$started
			fi
		else
			echo "bench: $RINGRESS_BIN not found: skipping ringress (run zig build)" >&2
		fi
	fi
	if want haproxy; then
		start_haproxy $((base + 2))
		ports[haproxy]=$((base + 2))
		procs[haproxy]=$started
	fi
	if want nginx; then
		start_nginx $((base + 3))
		ports[nginx]=$((base + 3))
		procs[nginx]=$started
	fi
	if has_case post1k; then
		for name in ringress haproxy nginx; do
			[ -n "${ports[$name]:-}" ] && check_post "$name" "${ports[$name]}"
		done
	fi
fi

# With --rounds N: one row per proxy out of its N rounds of case $1 (the
# round with the median req/s, the median CPU µs/request, the errors of all
# rounds, the syscalls of the first round), plus two more fields: the
# medians over rounds of ringress's req/s and CPU µs/request divided by the
# row's in the same round (runs seconds apart share this machine's noise;
# rounds minutes apart do not). A proxy's k-th row of the case is its round k.
aggregate() { # case
	local c="$1" r rc keep=() rows=()
	for r in "${results[@]}"; do
		IFS='|' read -r rc _ <<<"$r"
		if [ "$rc" = "$c" ]; then rows+=("$r"); else keep+=("$r"); fi
	done
	mapfile -t -O "${#keep[@]}" keep < <(printf '%s\n' "${rows[@]}" | awk -F'|' '
		function isort(a, m,  i, j, t) { for (i = 2; i <= m; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
		function median(a, m) { isort(a, m); return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
		function num(x) { return x ~ /^[0-9.]+$/ && x + 0 > 0 }
		{ n = $2; k = ++cnt[n]; if (k == 1) order[++nn] = n
		  row[n, k] = $0; rps[n, k] = $3; cpu[n, k] = $7; errs[n] += $8
		  if (sc[n] == "" && $9 != "-") sc[n] = $9 }
		END {
			for (i = 1; i <= nn; i++) {
				n = order[i]; m = cnt[n]
				delete v; delete cv; delete rr; delete cr
				for (k = 1; k <= m; k++) v[k] = rps[n, k] + 0
				isort(v, m)
				med = v[int((m + 1) / 2)]
				for (k = 1; k <= m; k++) if (rps[n, k] + 0 == med) { pick = k; break }
				split(row[n, pick], f, "|")
				nc = 0
				for (k = 1; k <= m; k++) if (num(cpu[n, k])) cv[++nc] = cpu[n, k] + 0
				cpum = nc ? sprintf("%.1f", median(cv, nc)) : f[7]
				nr = ncr = 0
				for (k = 1; k <= m && k <= cnt["ringress"]; k++) {
					if (num(rps[n, k]) && num(rps["ringress", k])) rr[++nr] = rps["ringress", k] / rps[n, k]
					if (num(cpu[n, k]) && num(cpu["ringress", k])) cr[++ncr] = cpu["ringress", k] / cpu[n, k]
				}
				printf "%s|%s|%s|%s|%s|%s|%s|%d|%s|%s|%s|%s|%s|%s\n", f[1], f[2], f[3], f[4], f[5], f[6], cpum, errs[n],
					sc[n] == "" ? "-" : sc[n], f[10], f[11], f[12],
					nr ? sprintf("%.2f", median(rr, nr)) : "-", ncr ? sprintf("%.2f", median(cr, ncr)) : "-"
			}
		}')
	results=("${keep[@]}")
}

for c in "${load_cases[@]+"${load_cases[@]}"}"; do
	names=()
	# Without a proxy there is nothing to hold to half a CPU.
	if want direct && [ "$c" != small-cpu50 ]; then names+=("$backend-direct"); fi
	for name in ringress ringress-buffers ringress-uring haproxy nginx; do
		[ -n "${ports[$name]:-}" ] || continue
		if [[ "$name" == ringress-* ]] && ! large "$c"; then continue; fi
		names+=("$name")
	done
	for ((r = 0; r < rounds; r++)); do
		for ((k = 0; k < ${#names[@]}; k++)); do
			name="${names[$(((k + r) % ${#names[@]}))]}"
			if [ "$name" = "$backend-direct" ]; then
				measure "$c" "$name" "$backend_port" "" "$r"
				continue
			fi
			hold=0
			if [ "$c" = small-cpu50 ] && [ "$held" = 1 ]; then hold=1; fi
			if [ "$hold" = 1 ]; then quota_hold "${procs[$name]}"; fi
			measure "$c" "$name" "${ports[$name]}" "${procs[$name]}" "$r"
			if [ "$hold" = 1 ]; then quota_release "${procs[$name]}"; fi
		done
	done
	[ "$rounds" -gt 1 ] && aggregate "$c"
done

# idle10k: a fresh process of each proxy, 1,000 then 10,000 idle keep-alive
# client connections (each after one request); the earlier proxies idle.
if has_case idle10k; then
	cfg_conns=16384 # nginx closes idle keep-alive connections when fewer than 1/16 are free
	for name in ringress haproxy nginx; do
		want "$name" || continue
		started=""
		case "$name" in
		ringress)
			[ -x "$RINGRESS_BIN" ] || continue
			port=$((base + 6))
			start_ringress "$port" $((base + 16)) || true
			;;
		haproxy) port=$((base + 7)); start_haproxy "$port" || true ;;
		nginx) port=$((base + 8)); start_nginx "$port" || true ;;
		esac
		p=$started
		if [ -z "$p" ] || ! kill -0 "$p" 2>/dev/null || ! wait_port "$port"; then
			echo "bench: idle10k/$name: the proxy did not start" >&2
			idle_results+=("$name|-|-|-")
			[ -n "$p" ] && stop "$p"
			continue
		fi
		sleep 0.5
		if "${load_cpu[@]}" python3 "$here/idle.py" --port "$port" --pids "$p" --counts 1000,10000 \
			>"$tmp/idle-$name.txt" 2>"$tmp/idle-$name.err" 9>&-; then
			r1="$(awk '$1 == 1000 {print $2}' "$tmp/idle-$name.txt")"
			r10="$(awk '$1 == 10000 {print $2}' "$tmp/idle-$name.txt")"
			per="$(awk -v a="$r1" -v b="$r10" 'BEGIN{printf "%.2f", (b-a)/9000}')"
			idle_results+=("$name|$r1|$r10|$per")
			echo "bench: idle10k/$name: RSS $r1 KiB at 1k, $r10 KiB at 10k: $per KiB per idle connection" >&2
		else
			echo "bench: idle10k/$name failed: $(tr '\n' ' ' <"$tmp/idle-$name.err")" >&2
			idle_results+=("$name|-|-|-")
		fi
		stop "$p"
	done
	cfg_conns=4096
fi

# ---- the tables ----
ratio() { # a b -> a/b with 2 decimals, "-" when unknown
	awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || a == "-" || b == "-" || b+0 == 0) print "-"; else printf "%.2f", a/b }'
}
pin_note="$([ "$pin" = 1 ] && echo on || echo off)"
# The targets of the project's performance issue, read from this run's rows
# (those of cases not run are left out). "ceiling": the origin's req/s
# without a proxy divided by the row's: when CPU 1 (wrk and the origin) sets
# the pace, no proxy can make more than that ratio, however little CPU it uses.
targets() {
	[ "${#results[@]}" -gt 0 ] || [ "${#idle_results[@]}" -gt 0 ] || return 0
	{
		printf '%s\n' "${results[@]+"${results[@]}"}"
		for r in "${idle_results[@]+"${idle_results[@]}"}"; do echo "idle10k|$r"; done
	} | awk -F'|' -v direct="$backend-direct" -v q="'" '
		function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return -1 }
		function num(v) { return v ~ /^[0-9.]+$/ && v + 0 > 0 }
		# ringress over the row: the aggregated ratio (--rounds) or one of this run.
		# Rounded as shown, so that the verdict reads what the table says.
		function rat(c, n, col,  i) { i = col == 3 ? 13 : 14
			if (num(f[c, n, i])) return f[c, n, i] + 0
			return num(f[c, "ringress", col]) && num(f[c, n, col]) ? sprintf("%.2f", f[c, "ringress", col] / f[c, n, col]) + 0 : -1 }
		function line(what, fig, ceil, ok) { rows = rows sprintf("| %s | %s | %s | %s |\n", what, fig, ceil, ok) }
		function verdict(ok, known) { return !known ? "-" : ok ? "met" : "missed" }
		function rps(c, n, label,  r, cl) {
			if (!((c, n, 3) in f) || !((c, "ringress", 3) in f)) return
			r = rat(c, n, 3); cl = "-"
			if (num(f[c, direct, 3]) && num(f[c, n, 3])) cl = sprintf("%.2fx", f[c, direct, 3] / f[c, n, 3])
			line(label " req/s >= 1.15x " n q "s", r < 0 ? "-" : sprintf("%.2fx", r), cl, verdict(r >= 1.15, r >= 0))
		}
		$1 == "idle10k" { idle[$2] = $5; next }
		{ for (i = 3; i <= NF; i++) f[$1, $2, i] = $i
		  if ($2 == "ringress" && $1 !~ /^(close|64k|1m|100m|small-cpu50)$/ && num($9) && $9 + 0 > sc) { sc = $9 + 0; scc = $1 } }
		END {
			rps("small", "haproxy", "small, 64 connections:"); rps("small", "nginx", "small, 64 connections:")
			rps("small-cpu50", "haproxy", "small-cpu50 (per core):"); rps("small-cpu50", "nginx", "small-cpu50 (per core):")
			if (("small", "haproxy", 7) in f) {
				r = rat("small", "haproxy", 7)
				line("small: CPU per request <= 0.75x HAProxy" q "s", r < 0 ? "-" : sprintf("%.2fx", r), "", verdict(r <= 0.75, r >= 0))
				a = ms(f["small", "ringress", 6]); b = ms(f["small", "haproxy", 6])
				line("small: p99 <= HAProxy" q "s", f["small", "ringress", 6] " against " f["small", "haproxy", 6], "", verdict(a <= b, a >= 0 && b >= 0))
			}
			if (scc != "") line("keep-alive small GETs and POSTs: syscalls per request < 0.5", sprintf("%.2f at most (%s)", sc, scc), "", verdict(sc < 0.5, 1))
			if (num(idle["ringress"]) && num(idle["nginx"]))
				line("idle10k: KiB per connection <= nginx" q "s", idle["ringress"] " against " idle["nginx"], "", verdict(idle["ringress"] <= idle["nginx"], 1))
			if (("close", "haproxy", 3) in f) {
				r = rat("close", "haproxy", 3)
				line("close: req/s >= HAProxy" q "s", r < 0 ? "-" : sprintf("%.2fx", r), "", verdict(r >= 1, r >= 0))
			}
			if (rows == "") exit
			print ""
			print "**targets** (ringress in this run; ceiling: " direct " req/s divided by the row" q "s, the most any proxy could make when CPU 1 sets the pace)"
			print ""
			print "| target | ringress | ceiling | verdict |"
			print "|---|---|---:|---|"
			printf "%s", rows
		}'
}
# The report: the run's date, kernel, CPU and command, then the tables.
report() {
	echo
	echo "$(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(nproc) CPUs"
	echo "command: bash bench/run.sh${argv[*]+ ${argv[*]}}"
	[ "$rounds" -gt 1 ] && echo "rounds: $rounds per case, the order of the proxies rotated each round; req/s, MB/s, p50 and p99 from the round with the median req/s, CPU µs/request the median of the rounds, errors of all rounds, syscalls from the first round; ratios the medians over rounds of ringress's figure divided by the row's in the same round"
	echo "wrk / h2load --h1 -t1, ${duration}s per case (100m: $((duration * 2))s); proxy on CPU 0, origin ($backend) and load generator on CPU 1 (pinning: $pin_note); syscalls: separate ${window}s run under strace -c -f; instructions: $([ "$perf_ok" = 1 ] && echo "perf stat" || echo "perf stat -e instructions unsupported here")"
	for c in "${load_cases[@]+"${load_cases[@]}"}"; do
		ring_rps="" ring_cpu=""
		for r in "${results[@]}"; do
			IFS='|' read -r rc n rps mbs p50 p99 cpu errs sc ins sl ld _ <<<"$r"
			if [ "$rc" = "$c" ] && [ "$n" = ringress ]; then
				ring_rps="$rps"
				ring_cpu="$cpu"
			fi
		done
		echo
		echo "**$c**"
		echo
		echo "| proxy | req/s | MB/s | p50 | p99 | CPU µs/request | load-CPU µs/request | sleeps/request | syscalls/request | instructions/request | errors | ringress req/s ratio | ringress CPU ratio |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		for r in "${results[@]}"; do
			IFS='|' read -r rc n rps mbs p50 p99 cpu errs sc ins sl ld rr cr <<<"$r"
			[ "$rc" = "$c" ] || continue
			# With --rounds, aggregate's medians of per-round ratios.
			[ -n "$rr" ] || rr="$(ratio "$ring_rps" "$rps")"
			[ -n "$cr" ] || cr="$(ratio "$ring_cpu" "$cpu")"
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$rps" "$mbs" "$p50" "$p99" "$cpu" \
				"$ld" "$sl" "$sc" "$ins" "$errs" "$rr" "$cr"
		done
	done
	if [ "${#load_cases[@]}" -gt 0 ]; then
		echo
		echo "ratios: ringress (default path) divided by the row (req/s: above 1 is faster; CPU: below 1 is cheaper)."
	fi
	if [ "${#idle_results[@]}" -gt 0 ]; then
		ring_per=""
		for r in "${idle_results[@]}"; do
			IFS='|' read -r n r1 r10 per <<<"$r"
			[ "$n" = ringress ] && ring_per="$per"
		done
		echo
		echo "**idle10k** (fresh process each; RSS summed over the proxy's processes)"
		echo
		echo "| proxy | RSS at 1k idle | RSS at 10k idle | KiB per idle connection | ringress ratio |"
		echo "|---|---:|---:|---:|---:|"
		for r in "${idle_results[@]}"; do
			IFS='|' read -r n r1 r10 per <<<"$r"
			printf '| %s | %s KiB | %s KiB | %s | %s |\n' "$n" "$r1" "$r10" "$per" "$(ratio "$ring_per" "$per")"
		done
		echo
		echo "ratio: ringress's KiB per idle connection divided by the row's (below 1 is smaller)."
	fi
	targets
	if has_case micro; then
		echo
		echo "**micro** ($RINGRESS_MICRO$([ "$quick" = 1 ] && echo " --quick"); best of several rounds, run before the load cases)"
		echo
		cat "$tmp/micro.md"
	fi
}
report | tee "$tmp/report.md"

# ---- docs/benchmarks.md ----
if [ "$doc" = 1 ]; then
	python3 - "$root/docs/benchmarks.md" "$tmp/report.md" <<'PY' || exit 1
import sys
path, rep = sys.argv[1], open(sys.argv[2]).read().strip("\n")
begin, end = "<!-- bench/run.sh --doc: begin -->", "<!-- bench/run.sh --doc: end -->"
doc = open(path).read()
if begin not in doc or end not in doc or doc.index(begin) > doc.index(end):
    sys.exit("bench: %s has no %s ... %s markers: not written" % (path, begin, end))
a, b = doc.index(begin) + len(begin), doc.index(end)
open(path, "w").write(doc[:a] + "\n\n" + rep + "\n\n" + doc[b:])
PY
	echo "bench: results written into $root/docs/benchmarks.md" >&2
fi

# ---- the chart ----
if [ "$chart" = 1 ]; then
	if ! have gnuplot; then
		echo "bench: gnuplot not found (apt-get install gnuplot-nox): no chart" >&2
	else
		dat="$tmp/chart.dat"
		names=()
		for n in ringress haproxy nginx; do [ -n "${ports[$n]:-}" ] && names+=("$n"); done
		rows=0
		{
			echo "case ${names[*]-}"
			for c in small16 small small256 small16-h2load small-h2load small256-h2load small-cpu50; do
				has_case "$c" || continue
				for metric in rps cpu; do
					line="$c/$metric"
					for n in "${names[@]-}"; do
						v="-"
						for r in "${results[@]}"; do
							IFS='|' read -r rc rn rps mbs p50 p99 cpu errs sc ins sl ld _ <<<"$r"
							if [ "$rc" = "$c" ] && [ "$rn" = "$n" ]; then
								if [ "$metric" = rps ]; then v="$rps"; else v="$cpu"; fi
							fi
						done
						line="$line $v"
					done
					echo "$line"
				done
				rows=$((rows + 1))
			done
		} >"$dat"
		if [ "$rows" = 0 ] || [ "${#names[@]}" = 0 ]; then
			echo "bench: no small case measured: no chart" >&2
		else
			grep -v '/cpu ' "$dat" | sed 's|/rps||' >"$tmp/chart-rps.dat"
			grep -v '/rps ' "$dat" | sed 's|/cpu||' >"$tmp/chart-cpu.dat"
			out="$root/docs/benchmarks.png"
			gnuplot -e "rps='$tmp/chart-rps.dat'; cpu='$tmp/chart-cpu.dat'; out='$out'; ncol=$((${#names[@]} + 1)); subtitle='$(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) CPUs, proxy pinned to one CPU'" \
				"$here/chart.gnuplot" && echo "bench: chart written to $out" >&2
		fi
	fi
fi
