#!/usr/bin/env bash
# bench/ab.sh - interleaved A/B runs of ringress settings against HAProxy
# (and nginx).
#
#   bash bench/ab.sh [--rounds N] [--connections N] [--duration S] [--close]
#                    [--nginx] [--proxy-cpu PCT] [--no-pin] [--bin PATH]
#                    LABEL[@BINARY]:FLAGS [...]
#
#   e.g. bash bench/ab.sh --rounds 8 "batched:" "unbatched:--batch-wait-usec 0"
#        bash bench/ab.sh "before@/tmp/old/bin/ringress:" "after:"
#        bash bench/ab.sh --rounds 15 --nginx "ringress:"
#
# One nginx origin (as bench/run.sh's), one ringress per LABEL:FLAGS (FLAGS
# are extra ringress flags, may be empty; ringress is BINARY when the label
# names one, else RINGRESS_BIN or --bin, default zig-out/bin/ringress: build
# it ReleaseFast) and one HAProxy, all started once; with --nginx also nginx
# as a proxy (bench/nginx.conf.in, as bench/run.sh's). Each round runs wrk
# -t1 (small GET, 1 s warm-up, then --duration s, default 2; with --close
# every request on a new connection, "Connection: close") against every one
# in turn, starting one further each round (the first run of a series does
# measurably better or worse here): runs seconds apart share this shared
# machine's noise, runs minutes apart do not. Prints every run (req/s, proxy
# CPU µs/request, sleeps/request, p99), then per label the median over
# rounds of its ratio to HAProxy's run of the same round (and to nginx's;
# the reference's own line, 1.00x, checks the arithmetic).
# Placement as bench/run.sh: proxies on CPU 0, origin and wrk on CPU 1;
# --proxy-cpu PCT holds every proxy to PCT % of CPU 0 (a cgroup quota, as
# bench/run.sh --proxy-cpu), so that the proxy, not CPU 1, sets the pace.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
RINGRESS_BIN="${RINGRESS_BIN:-$root/zig-out/bin/ringress}"
rounds=6 conns=64 duration=2 pin=1 with_nginx=0 proxy_pct=""
variants=() wrk_hdr=()
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) rounds="$2"; shift ;;
	--connections) conns="$2"; shift ;;
	--duration) duration="$2"; shift ;;
	--bin) RINGRESS_BIN="$2"; shift ;;
	--close) wrk_hdr=(-H "Connection: close") ;;
	--no-pin) pin=0 ;;
	--nginx) with_nginx=1 ;;
	--proxy-cpu) proxy_pct="$2"; shift ;;
	-h | --help) awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0"; exit 0 ;;
	*:*) variants+=("$1") ;;
	*) echo "ab: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done
[ -z "$proxy_pct" ] || { [[ "$proxy_pct" =~ ^[1-9][0-9]?$ ]] && [ "$proxy_pct" -le 100 ]; } ||
	{ echo "ab: --proxy-cpu wants a percentage from 1 to 100, not $proxy_pct" >&2; exit 2; }
[ "${#variants[@]}" -gt 0 ] || { echo "ab: give at least one LABEL:FLAGS (see --help)" >&2; exit 2; }
[ -x "$RINGRESS_BIN" ] || { echo "ab: $RINGRESS_BIN not found (zig build -Doptimize=ReleaseFast)" >&2; exit 2; }

bench_name=ab bench_tmp_prefix=ringress-ab
. "$here/lib.sh"
bench_require wrk nginx haproxy curl
bench_pin
bench_begin
[ -z "$proxy_pct" ] || bench_quota "$proxy_pct"
render_setup
base="${BENCH_PORT_BASE:-18180}"
backend_port=$base
mkdir -p "$tmp/www" "$tmp/m"
printf '%099d\n' 0 | tr 0 x >"$tmp/www/index.html"
render "$here/nginx-backend.conf.in" "$backend_port" "$tmp/backend.conf"
port_free "$backend_port"
"${load_cpu[@]}" nginx -p "$tmp" -e "$tmp/backend-error.log" -c "$tmp/backend.conf" >"$tmp/backend.out" 2>&1 9>&- &
pids+=($!)
wait_port "$backend_port"
{ origin_manifests "$backend_port"; origin_ingress; } >"$tmp/m/ab.yaml"

labels=()
declare -A port=() pid=()
i=1
for v in "${variants[@]}"; do
	label="${v%%:*}" flags="${v#*:}" bin="$RINGRESS_BIN"
	if [[ "$label" == *@* ]]; then
		bin="${label#*@}" label="${label%%@*}"
		[ -x "$bin" ] || { echo "ab: $bin (of $label) not found" >&2; exit 2; }
	fi
	p=$((base + i)) i=$((i + 1))
	port_free "$p"
	# shellcheck disable=SC2086
	"${proxy_cpu[@]}" "$bin" --manifests "$tmp/m" --bind 127.0.0.1 --http-port "$p" \
		--admin-port $((p + 50)) --https-port 0 "${ringress_bench_flags[@]}" $flags \
		>"$tmp/ringress-$p.log" 2>&1 9>&- &
	pid[$label]=$! port[$label]=$p
	pids+=($!)
	wait_ready "$p" $((p + 50))
	labels+=("$label")
done
p=$((base + i))
port_free "$p"
start_haproxy "$p"
pid[haproxy]=$started port[haproxy]=$p
labels+=(haproxy)
if [ "$with_nginx" = 1 ]; then
	p=$((p + 1))
	port_free "$p"
	start_nginx "$p"
	pid[nginx]=$started port[nginx]=$p
	labels+=(nginx)
fi

echo "round label req/s CPU-µs/request sleeps/request p99-ms"
nl=${#labels[@]}
for ((r = 1; r <= rounds; r++)); do
	# The order rotates each round: on this machine the first of a series
	# of runs does measurably better or worse than the next.
	for ((k = 0; k < nl; k++)); do
		label="${labels[$(((r - 1 + k) % nl))]}"
		url="http://127.0.0.1:${port[$label]}/index.html"
		loadgen 1 wrk -t1 -c"$conns" -d1s "${wrk_hdr[@]+"${wrk_hdr[@]}"}" "$url" >/dev/null 2>&1 || true
		c0="$(cpu_ticks "${pid[$label]}")" s0="$(sleeps "${pid[$label]}")"
		out="$(loadgen "$duration" wrk -t1 -c"$conns" -d"${duration}s" --latency "${wrk_hdr[@]+"${wrk_hdr[@]}"}" "$url" 2>&1 || true)"
		c1="$(cpu_ticks "${pid[$label]}")" s1="$(sleeps "${pid[$label]}")"
		awk -v r="$r" -v l="$label" -v c=$((c1 - c0)) -v s=$((s1 - s0)) -v hz="$clk_tck" '
			/^Requests\/sec:/ { rps = $2 } / requests in / { n = $1 }
			$1 == "99%" { p99 = $2 + 0; if ($2 ~ /us$/) p99 /= 1000; else if ($2 ~ /[0-9]s$/) p99 *= 1000 }
			/Non-2xx|Socket errors/ { err = 1 }
			END { if (!n) { print r, l, "no result" > "/dev/stderr"; exit }
			      printf "%d %s %.0f %.1f %.2f %.3f%s\n", r, l, rps, c * 1e6 / hz / n, s / n, p99, err ? " (errors)" : "" }' <<<"$out"
	done
done | tee "$tmp/runs.txt"

refs=(haproxy)
[ "$with_nginx" = 1 ] && refs+=(nginx)
for ref in "${refs[@]}"; do
	echo
	echo "label: median over rounds of (its req/s / $ref's), (its CPU µs/request / $ref's), (its p99 / $ref's); median sleeps/request"
	for label in "${labels[@]}"; do
		awk -v l="$label" -v ref="$ref" '
			function med(a, n,  i, j, t) { for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j > 0 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
			                               return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
			$1 ~ /^[0-9]+$/ && $2 == ref { hr[$1] = $3; hc[$1] = $4; hp[$1] = $6 }
			$1 ~ /^[0-9]+$/ && $2 == l { vr[$1] = $3; vc[$1] = $4; vs[$1] = $5; vp[$1] = $6 }
			END { for (r in vr) if (r in hr && hr[r] > 0 && hc[r] > 0 && hp[r] > 0) { k++; a[k] = vr[r] / hr[r]; b[k] = vc[r] / hc[r]; c[k] = vs[r]; d[k] = vp[r] / hp[r] }
			      if (k) printf "%s: req/s %.2fx, CPU %.2fx, p99 %.2fx, sleeps %.2f (%d rounds)\n", l, med(a, k), med(b, k), med(d, k), med(c, k), k }' "$tmp/runs.txt"
	done
done
