#!/usr/bin/env bash
# bench/tls.sh - TLS termination: ringress (wolfSSL) against nginx and HAProxy
# (OpenSSL, Debian's packages) in one run, all proxying to one nginx origin;
# prints markdown tables.
#
#   bash bench/tls.sh [--quick] [--duration S] [--clients N] [--only LIST] [--no-pin]
#
#   RINGRESS_BIN       ringress to measure (default zig-out/bin/ringress)
#   RINGRESS_FAST_BIN  optional second ringress measured in the same run, e.g.
#                      built against ./bootstrap.sh --fast-crypto's wolfSSL:
#                        zig build -Doptimize=ReleaseFast -p /tmp/ringress-sys
#                        zig build -Doptimize=ReleaseFast \
#                          -Dwolfssl-prefix=$PWD/.local/wolfssl-fast -p /tmp/ringress-fast
#                        RINGRESS_BIN=/tmp/ringress-sys/bin/ringress \
#                          RINGRESS_FAST_BIN=/tmp/ringress-fast/bin/ringress bash bench/tls.sh
#                      Rows are named after the libwolfssl.so each binary loads.
#   RINGRESS_EXTRA_BIN optional third ringress (another wolfSSL build)
#   BENCH_PORT_BASE    first of the ports used (default 28080; base..base+30)
#
#   --quick        2 s per measurement instead of 5
#   --clients N    parallel openssl s_time processes for handshakes (default 4)
#   --only LIST    comma-separated subset of: ringress,ringress-fast,ringress-extra,nginx,haproxy
#   --no-pin       do not pin processes to CPUs
#
# Measurements (TLS 1.3 as negotiated by default, HTTP/1.1 to the origin):
#   full handshakes/s   openssl s_time -new (no resumption), N in parallel, each
#                       connection fetches the 100-byte /index.html; RSA-2048
#                       and ECDSA P-256 self-signed certificates for localhost
#                       (generated in the temp dir, the same files for all)
#   resumed/s           wrk -t1 -c16 -H 'Connection: close' on the RSA port: wrk
#                       keeps its session across reconnects, so every connection
#                       but the first resumes with a session ticket (TLS 1.3 PSK
#                       with ECDHE); the CPU cost per connection, far below a full
#                       RSA handshake's, shows it (a warning is printed otherwise)
#   1 MiB MB/s          wrk -t1 -c8 keep-alive over https://localhost (SNI)
#   CPU µs              utime+stime of the proxy process per handshake/request
# (openssl s_time -reuse is not used: it reads each response to EOF, and a
# server that closes without close_notify makes OpenSSL drop the session.)
# s_time sends no SNI and no Host header: ringress gets the certificate as
# --default-ssl-certificate too (and as spec.tls of the Ingress for localhost),
# and the request line carries a Host header written into s_time's -www path.
#
# Placement (2 CPUs): the proxy under test on CPU 0, the origin and the clients
# on CPU 1. Each ringress runs two processes (one per certificate type, each
# --shards 1); HAProxy (nbthread 1) and nginx (1 worker) listen on two ports.
# Everything lives in a mktemp directory removed on exit; every process
# started is stopped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
RINGRESS_BIN="${RINGRESS_BIN:-$root/zig-out/bin/ringress}"
RINGRESS_FAST_BIN="${RINGRESS_FAST_BIN:-}"
RINGRESS_EXTRA_BIN="${RINGRESS_EXTRA_BIN:-}"

duration=5
clients=4
only="ringress,ringress-fast,ringress-extra,nginx,haproxy"
pin=1
base="${BENCH_PORT_BASE:-28080}"
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) duration=2 ;;
	--duration) duration="$2"; shift ;;
	--clients) clients="$2"; shift ;;
	--only) only="$2"; shift ;;
	--no-pin) pin=0 ;;
	-h | --help) sed -n '2,43p' "$0"; exit 0 ;;
	*) echo "tls-bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
	shift
done

bench_name=tls-bench bench_tmp_prefix=ringress-tls-bench
. "$here/lib.sh"
bench_require wrk nginx haproxy curl openssl taskset
bench_pin
bench_begin
for p in 0 1 2 3 4 5 6 7 8 9 10 15 16 17 18 19 20 25 26 27 28 29 30; do port_free $((base + p)); done
now() { date +%s.%N; }

# ---- certificates, origin ----
cd "$tmp"
openssl req -x509 -newkey rsa:2048 -nodes -keyout rsa.key -out rsa.crt -days 2 \
	-subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ecdsa.key \
	-out ecdsa.crt -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
cat rsa.crt rsa.key >rsa.pem
cat ecdsa.crt ecdsa.key >ecdsa.pem

origin=$base
mkdir -p www
printf '%099d\n' 0 | tr 0 x >www/index.html
head -c 1048576 /dev/urandom >www/1m.bin
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
temp_paths="client_body_temp_path $tmp/t-body; proxy_temp_path $tmp/t-proxy; fastcgi_temp_path $tmp/t-fcgi; uwsgi_temp_path $tmp/t-uwsgi; scgi_temp_path $tmp/t-scgi;"
cat >origin.conf <<EOF
$user_line
worker_processes 1;
daemon off;
pid $tmp/origin.pid;
error_log $tmp/origin-error.log warn;
events { worker_connections 4096; }
http {
	access_log off; $temp_paths
	keepalive_requests 1000000; keepalive_timeout 75s; server_tokens off; default_type text/plain;
	server { listen 127.0.0.1:$origin backlog=4096; root $tmp/www; location / { try_files \$uri /index.html; } }
}
EOF
"${load_cpu[@]}" nginx -p "$tmp" -e "$tmp/origin-error.log" -c "$tmp/origin.conf" >origin.out 2>&1 9>&- &
pids+=($!)
wait_port "$origin"

want() { [[ ",$only," == *",$1,"* ]]; }
declare -A rsa_port=() ecdsa_port=() rsa_pid=() ecdsa_pid=() label=()
names=()

# ---- nginx (OpenSSL) ----
if want nginx; then
	cat >nginx.conf <<EOF
$user_line
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
	access_log off; $temp_paths
	keepalive_requests 1000000; keepalive_timeout 75s; server_tokens off;
	ssl_protocols TLSv1.2 TLSv1.3;
	upstream origin { server 127.0.0.1:$origin; keepalive 64; keepalive_requests 1000000; }
	server {
		listen 127.0.0.1:$((base + 1)) ssl backlog=4096;
		ssl_certificate $tmp/rsa.crt; ssl_certificate_key $tmp/rsa.key;
		location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
			proxy_set_header Host \$host; proxy_set_header X-Forwarded-Proto \$scheme; }
	}
	server {
		listen 127.0.0.1:$((base + 2)) ssl backlog=4096;
		ssl_certificate $tmp/ecdsa.crt; ssl_certificate_key $tmp/ecdsa.key;
		location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
			proxy_set_header Host \$host; proxy_set_header X-Forwarded-Proto \$scheme; }
	}
}
EOF
	"${proxy_cpu[@]}" nginx -p "$tmp" -e "$tmp/nginx-error.log" -c "$tmp/nginx.conf" >nginx.out 2>&1 9>&- &
	pids+=($!)
	names+=(nginx)
	label[nginx]="nginx $(nginx -v 2>&1 | sed 's|.*/||') (OpenSSL)"
	rsa_port[nginx]=$((base + 1)) ecdsa_port[nginx]=$((base + 2))
	rsa_pid[nginx]=$! ecdsa_pid[nginx]=$!
fi

# ---- HAProxy (OpenSSL) ----
if want haproxy; then
	cat >haproxy.cfg <<EOF
global
	nbthread 1
	maxconn 4096
	ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
	mode http
	option http-keep-alive
	option forwardfor
	http-reuse always
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend rsa
	bind 127.0.0.1:$((base + 3)) ssl crt $tmp/rsa.pem alpn http/1.1
	http-request set-header X-Forwarded-Proto https
	default_backend origin
frontend ecdsa
	bind 127.0.0.1:$((base + 4)) ssl crt $tmp/ecdsa.pem alpn http/1.1
	http-request set-header X-Forwarded-Proto https
	default_backend origin
backend origin
	server s1 127.0.0.1:$origin maxconn 1000
EOF
	haproxy -c -q -f haproxy.cfg || { echo "tls-bench: invalid haproxy config" >&2; exit 1; }
	"${proxy_cpu[@]}" haproxy -db -f haproxy.cfg >haproxy.log 2>&1 9>&- &
	pids+=($!)
	names+=(haproxy)
	label[haproxy]="HAProxy $(haproxy -v | awk 'NR==1{print $3}') (OpenSSL)"
	rsa_port[haproxy]=$((base + 3)) ecdsa_port[haproxy]=$((base + 4))
	rsa_pid[haproxy]=$! ecdsa_pid[haproxy]=$!
fi

# ---- ringress (wolfSSL): one process per certificate type ----
b64() { base64 -w0 "$1"; }
start_ringress() { # bin key https-port http-port admin-port
	local bin="$1" key="$2" port="$3" http="$4" admin="$5" dir="$tmp/m-$3"
	mkdir -p "$dir"
	{
		origin_manifests "$origin"
		cat <<YAML
---
apiVersion: v1
kind: Secret
metadata: {name: localhost-$key, namespace: bench}
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$tmp/$key.crt")
  tls.key: $(b64 "$tmp/$key.key")
YAML
		origin_ingress "localhost-$key"
	} >"$dir/bench.yaml"
	"${proxy_cpu[@]}" "$bin" --manifests "$dir" --bind 127.0.0.1 --http-port "$http" \
		--https-port "$port" --admin-port "$admin" --default-ssl-certificate "bench/localhost-$key" \
		"${ringress_bench_flags[@]}" >"$tmp/ringress-$port.log" 2>&1 9>&- &
	started=$!
	pids+=("$started")
	wait_ready "$port" "$admin"
}
add_ringress() { # name bin offset
	local name="$1" bin="$2" off="$3" lib
	if [ ! -x "$bin" ]; then
		echo "tls-bench: $bin not found: skipping $name (run zig build)" >&2
		return
	fi
	lib="$(ldd "$bin" | awk '/libwolfssl/{print $3}')"
	case "$lib" in
	/lib/* | /usr/lib/*) label[$name]="ringress (system wolfSSL)" ;;
	*) label[$name]="ringress (wolfSSL $(dirname "$(dirname "$lib")"))" ;;
	esac
	start_ringress "$bin" rsa $((base + off)) $((base + off + 10)) $((base + off + 20))
	rsa_port[$name]=$((base + off)) rsa_pid[$name]=$started
	start_ringress "$bin" ecdsa $((base + off + 1)) $((base + off + 11)) $((base + off + 21))
	ecdsa_port[$name]=$((base + off + 1)) ecdsa_pid[$name]=$started
	names+=("$name")
}
want ringress && add_ringress ringress "$RINGRESS_BIN" 5
if [ -n "$RINGRESS_FAST_BIN" ] && want ringress-fast; then add_ringress ringress-fast "$RINGRESS_FAST_BIN" 7; fi
if [ -n "$RINGRESS_EXTRA_BIN" ] && want ringress-extra; then add_ringress ringress-extra "$RINGRESS_EXTRA_BIN" 9; fi

# ---- check every endpoint; note what was negotiated ----
declare -A proto=()
for n in "${names[@]}"; do
	for kind in rsa ecdsa; do
		if [ "$kind" = rsa ]; then port=${rsa_port[$n]}; else port=${ecdsa_port[$n]}; fi
		wait_port "$port"
		code="$(curl -sk -o /dev/null -w '%{http_code}' "https://localhost:$port/index.html" || true)"
		[ "$code" = 200 ] || { echo "tls-bench: $n ($kind, port $port) answers '$code' on /index.html" >&2; exit 1; }
		info="$(openssl s_client -connect "127.0.0.1:$port" -servername localhost -brief </dev/null 2>&1 || true)"
		keyt="$(awk -F': ' '/Peer public key type|Server public key/{print $2}' <<<"$info" | head -n1)"
		p="$(awk -F': ' '/Protocol version/{print $2}' <<<"$info") $(awk -F': ' '/Ciphersuite/{print $2}' <<<"$info")"
		proto[$n]="$p"
		echo "tls-bench: $n $kind port $port: $p ${keyt:+($keyt)}" >&2
	done
done

# ---- measurements ----
declare -A res=() # "$name|metric" -> value
# s_time sends "GET <path> HTTP/1.0\r\n\r\n": slip a Host header in.
www=$'/index.html HTTP/1.0\r\nHost: localhost\r\nX-Bench:'
# Full handshakes with $clients parallel openssl s_time -new.
handshakes() { # name port pid metric
	local n="$1" port="$2" pid="$3" m="$4" d="$duration" i before after t0 t1 conns=0 c
	"${load_cpu[@]}" openssl s_time -connect "127.0.0.1:$port" -new -time 1 -www "$www" \
		>/dev/null 2>&1 || true # warm-up
	local sp=()
	before="$(cpu_ticks "$pid")"
	t0="$(now)"
	for i in $(seq 1 "$clients"); do
		"${load_cpu[@]}" openssl s_time -connect "127.0.0.1:$port" -new -time "$d" -www "$www" \
			>"$tmp/stime-$n-$m-$i.txt" 2>&1 9>&- &
		sp+=($!)
		pids+=($!)
	done
	for i in "${sp[@]}"; do wait "$i" || true; done
	t1="$(now)"
	after="$(cpu_ticks "$pid")"
	for i in $(seq 1 "$clients"); do
		c="$(awk '/connections in .* real seconds/{print $1}' "$tmp/stime-$n-$m-$i.txt" | tail -n1)"
		conns=$((conns + ${c:-0}))
	done
	if [ "$conns" = 0 ]; then
		echo "tls-bench: $n $m: no connection completed:" >&2
		cat "$tmp/stime-$n-$m-1.txt" >&2
		res[$n|$m]="0" res[$n|$m-cpu]="-"
		return
	fi
	res[$n|$m]="$(awk -v c="$conns" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", c/(b-a)}')"
	res[$n|$m-cpu]="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v c="$conns" 'BEGIN{printf "%.0f", t*1e6/hz/c}')"
	echo "tls-bench: $n $m: ${res[$n|$m]}/s, ${res[$n|$m-cpu]} CPU µs each ($conns connections)" >&2
}
# wrk over https; sets the globals w_rps w_mbs w_cpu (µs per request), "" on failure.
wrk_run() { # name tag port pid conns path extra...
	local n="$1" tag="$2" port="$3" pid="$4" c="$5" path="$6" before after f reqs errs
	shift 6
	local url="https://localhost:$port$path"
	w_rps="" w_mbs="" w_cpu=""
	loadgen 1 wrk -t1 -c"$c" -d1s "$@" "$url" >/dev/null 2>&1 || true # warm-up
	before="$(cpu_ticks "$pid")"
	loadgen "$duration" wrk -t1 -c"$c" -d"${duration}s" "$@" "$url" >"$tmp/wrk-$n-$tag.txt" 2>&1 9>&- || true
	after="$(cpu_ticks "$pid")"
	f="$tmp/wrk-$n-$tag.txt"
	reqs="$(awk '/requests in/{print $1}' "$f")"
	if [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
		echo "tls-bench: $n $tag: wrk produced no result:" >&2
		cat "$f" >&2
		return
	fi
	w_rps="$(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$f")"
	w_mbs="$(awk '/^Transfer\/sec:/{v=$2; m=1/1048576; if (v ~ /GB/) m=1024; else if (v ~ /MB/) m=1; else if (v ~ /KB/) m=1/1024; sub(/[A-Za-z]+$/, "", v); printf "%.0f", v*m}' "$f")"
	w_cpu="$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$reqs" 'BEGIN{printf "%.0f", t*1e6/hz/n}')"
	errs="$(awk '/Non-2xx or 3xx responses:/{n+=$NF} /Socket errors:/{gsub(",","");n+=$4+$6+$8+$10} END{print n+0}' "$f")"
	[ "$errs" = 0 ] || echo "tls-bench: $n $tag: $errs errors" >&2
}
resumed() { # name port pid
	wrk_run "$1" resumed "$2" "$3" 16 /index.html -H "Connection: close"
	res[$1|resumed]="${w_rps:-0}" res[$1|resumed-cpu]="${w_cpu:--}"
	echo "tls-bench: $1 resumed: ${res[$1|resumed]}/s, ${res[$1|resumed-cpu]} CPU µs each" >&2
}
bulk() { # name port pid
	wrk_run "$1" bulk "$2" "$3" 8 /1m.bin
	res[$1|bulk]="${w_mbs:-0}" res[$1|bulk-cpu]="${w_cpu:--}"
	echo "tls-bench: $1 1 MiB: ${res[$1|bulk]} MB/s, ${res[$1|bulk-cpu]} CPU µs/request" >&2
}

for n in "${names[@]}"; do handshakes "$n" "${rsa_port[$n]}" "${rsa_pid[$n]}" rsa; done
for n in "${names[@]}"; do handshakes "$n" "${ecdsa_port[$n]}" "${ecdsa_pid[$n]}" ecdsa; done
for n in "${names[@]}"; do resumed "$n" "${rsa_port[$n]}" "${rsa_pid[$n]}"; done
for n in "${names[@]}"; do bulk "$n" "${ecdsa_port[$n]}" "${ecdsa_pid[$n]}"; done

# ---- tables ----
ratio() { # a b -> a/b, "-" when unknown
	awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "" || b == "" || a == "-" || b == "-" || b+0 == 0) print "-"; else printf "%.2f", a/b }'
}
metrics=(rsa ecdsa resumed bulk rsa-cpu ecdsa-cpu resumed-cpu bulk-cpu)
echo
echo "$(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(nproc) CPUs, $(openssl version | awk '{print $1, $2}')"
echo "${duration}s per measurement; proxy on CPU 0, origin (nginx) and clients on CPU 1 (pinning: $([ "$pin" = 1 ] && echo on || echo off)); handshakes: $clients x openssl s_time; 1 MiB: wrk -t1 -c8"
echo
echo "| proxy | protocol | RSA-2048 handshakes/s | ECDSA P-256 handshakes/s | resumed/s | 1 MiB MB/s | CPU µs/handshake RSA | CPU µs/handshake ECDSA | CPU µs/resumed | CPU µs/1 MiB request |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in "${names[@]}"; do
	row="| ${label[$n]} | ${proto[$n]} "
	for m in "${metrics[@]}"; do row+="| ${res[$n|$m]:--} "; done
	echo "$row|"
done
rings=()
for n in "${names[@]}"; do [[ "$n" == ringress* ]] && rings+=("$n"); done
if [ "${#rings[@]}" -gt 0 ] && { want nginx || want haproxy; }; then
	echo
	echo "| ratio | RSA hs/s | ECDSA hs/s | resumed/s | 1 MiB MB/s | CPU RSA | CPU ECDSA | CPU resumed | CPU 1 MiB |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for r in "${rings[@]}"; do
		for o in nginx haproxy; do
			[ -n "${rsa_port[$o]:-}" ] || continue
			row="| ${label[$r]} / $o "
			for m in "${metrics[@]}"; do row+="| $(ratio "${res[$r|$m]:-}" "${res[$o|$m]:-}") "; done
			echo "$row|"
		done
	done
	echo
	echo "ratios: ringress divided by the other proxy (rates: above 1 is faster; CPU: below 1 is cheaper)."
fi
# A resumed connection costs far less than a full RSA handshake: if not, wrk did not resume.
for n in "${names[@]}"; do
	r="${res[$n|resumed-cpu]:-}" f="${res[$n|rsa-cpu]:-}"
	if [[ "$r" =~ ^[0-9]+$ && "$f" =~ ^[0-9]+$ ]] && [ $((r * 10)) -gt $((f * 7)) ]; then
		echo "warning: ${label[$n]}: a 'resumed' connection costs $r µs, a full RSA handshake $f µs: probably not resumed" >&2
	fi
done
