# bench/lib.sh - what bench/run.sh and bench/tls.sh share: the lock that runs
# one benchmark at a time, a private temporary directory with every process
# started stopped on exit, port checks, and CPU time from /proc.
#
# Source it after setting bench_name (the prefix of messages) and
# bench_tmp_prefix (the mktemp name); then call bench_begin.

# Fails unless every tool named is on PATH.
bench_require() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null || { echo "$bench_name: $t not found (bootstrap.sh installs it)" >&2; exit 1; }
	done
}

# Command prefixes (arrays, not functions: a function run with & would make
# $! the pid of a subshell instead of the process itself; taskset execs):
# the proxy under test on CPU 0, the origin and load generators on CPU 1,
# when $pin is 1 (set to 0 on a machine with one CPU).
bench_pin() {
	proxy_cpu=() load_cpu=()
	if [ "$pin" = 1 ] && [ "$(nproc)" -lt 2 ]; then
		echo "$bench_name: only $(nproc) CPU available, not pinning" >&2
		pin=0
	fi
	if [ "$pin" = 1 ]; then proxy_cpu=(taskset -c 0); load_cpu=(taskset -c 1); fi
}

# Runs a load generator on the load CPU for a run of about SECONDS, and
# kills it if it outlives that by 30 s: h2load 1.52 once kept some clients
# sending for twelve minutes after "Stopped all clients" (they had
# reconnected, a proxy having closed their connection after its 1,000
# requests, as ringress and nginx do by default, just as the duration
# ended), which hung the whole run.
loadgen() { # seconds command...
	local d="$1" rc=0
	shift
	timeout -k 5 $((d + 30)) "${load_cpu[@]+"${load_cpu[@]}"}" "$@" || rc=$?
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "$bench_name: $1 did not end within $((d + 30)) s of a ${d} s run: killed" >&2
	fi
	return "$rc"
}

# The configurations of bench/*.in: render TEMPLATE PORT OUT fills in $tmp,
# the port, $backend_port (the origin), the user line, $cfg_conns and the file
# descriptor limits. render_setup sets their defaults.
render_setup() {
	user_line=""
	[ "$(id -u)" = 0 ] && user_line="user root;"
	cfg_conns=4096 # worker_connections / maxconn; 16384 for idle10k
	nofile_hard="$(ulimit -Hn)"
	if [ "$nofile_hard" = unlimited ]; then nofile_hard=1048576; fi
}
render() { # template port out
	# File descriptors: two per connection, capped by the hard limit (no
	# CAP_SYS_RESOURCE in containers). HAProxy sizes its own limit as 2.5 per
	# connection and refuses to start when it cannot have it: below that, give
	# it the hard limit and "no strict-limits" (idle clients need one each).
	local nofile=$((cfg_conns * 2 + 100)) hap=""
	[ "$nofile" -gt "$nofile_hard" ] && nofile=$nofile_hard
	if [ $((cfg_conns * 5 / 2 + 100)) -gt "$nofile_hard" ]; then
		hap="ulimit-n $nofile_hard\n\tno strict-limits"
	fi
	sed -e "s|@TMP@|$tmp|g" -e "s|@PORT@|$2|g" -e "s|@BACKEND_PORT@|$backend_port|g" \
		-e "s|@USER@|$user_line|g" -e "s|@CONNS@|$cfg_conns|g" \
		-e "s|@NOFILE@|$nofile|g" -e "s|@HAPROXY_LIMITS@|$hap|g" "$1" >"$3"
}

# bench_quota PCT (after bench_pin and bench_begin): the proxies started with
# "${proxy_cpu[@]}" run in a CPU cgroup limited to PCT % of one CPU (in 10 ms
# periods), so that the proxy, not the origin and load generator on the
# other CPU, sets the pace: requests/s then compare the proxies' work per
# unit of CPU. cgroup v2 (cpu.max) or v1 (cpu.cfs_quota_us); root only.
bench_quota() {
	quota_make "$1" || exit 1
	# shellcheck disable=SC2016
	proxy_cpu=("${proxy_cpu[@]+"${proxy_cpu[@]}"}" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$quota_cg")
}

# quota_make PCT: the cgroup $quota_cg, limited to PCT % of one CPU in 10 ms
# periods (removed by bench_cleanup); fails with a message when it cannot be
# made (not root, no cpu controller), $quota_cg then unset.
quota_make() {
	local pct="$1" period=10000 q dir
	q=$((period * pct / 100))
	dir="$(cgroup_root)/$bench_tmp_prefix-$$"
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
		mkdir "$dir" 2>/dev/null && quota_cg="$dir" && echo "$q $period" >"$dir/cpu.max"
	else
		mkdir "$dir" 2>/dev/null && quota_cg="$dir" && echo "$period" >"$dir/cpu.cfs_period_us" &&
			echo "$q" >"$dir/cpu.cfs_quota_us"
	fi || { echo "$bench_name: cannot limit the proxies' CPU (a cgroup of the cpu controller, as root)" >&2; return 1; }
}
# The hierarchy of the cpu controller: cgroup v2's, or v1's cpu mount.
cgroup_root() {
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then echo /sys/fs/cgroup; else echo /sys/fs/cgroup/cpu; fi
}

# quota_hold PID moves a running proxy (the process and its children, every
# thread) into $quota_cg; quota_release PID moves every process in $quota_cg
# back to the cgroup it came from (children born there: their proxy's; a
# cgroup not visible here, as in a container: the hierarchy's root). For one
# case under the quota in a run without it. A process that cannot be moved
# is reported, never fatal: the run goes on.
declare -A quota_home=()
quota_hold() {
	local p home root
	root="$(cgroup_root)"
	for p in $(proc_tree "$1"); do
		[ -r "/proc/$p/cgroup" ] || continue
		if [ "$root" = /sys/fs/cgroup ]; then
			home="$root$(awk -F: '$1 == "0" {print $3; exit}' "/proc/$p/cgroup" 2>/dev/null || true)"
		else
			home="$root$(awk -F: '$2 ~ /(^|,)cpu(,|$)/ {print $3; exit}' "/proc/$p/cgroup" 2>/dev/null || true)"
		fi
		[ -f "${home%/}/cgroup.procs" ] || home="$root"
		quota_home[$p]="${home%/}"
		echo "$p" 2>/dev/null >"$quota_cg/cgroup.procs" || echo "$bench_name: cannot hold process $p to the CPU quota" >&2
	done
}
quota_release() {
	local p home proxy_home="${quota_home[$1]:-$(cgroup_root)}"
	for p in $(cat "$quota_cg/cgroup.procs" 2>/dev/null || true); do
		home="${quota_home[$p]:-$proxy_home}"
		echo "$p" 2>/dev/null >"$home/cgroup.procs" || echo "$bench_name: cannot move process $p out of the CPU quota" >&2
		unset "quota_home[$p]"
	done
}

# One benchmark at a time on this machine (two would share the CPUs); then
# the temporary directory $tmp and the cleanup of every pid in $pids.
bench_begin() {
	exec 9>/tmp/ringress-bench.lock
	if ! flock -n 9; then
		echo "$bench_name: another benchmark is running; waiting for it" >&2
		flock 9
	fi
	tmp="$(mktemp -d -t "$bench_tmp_prefix.XXXXXX")"
	pids=()
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

bench_cleanup() {
	local rc=$? p
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
	if [ -n "${quota_cg:-}" ]; then rmdir "$quota_cg" 2>/dev/null || true; fi
	if [ -n "${BENCH_KEEP_TMP:-}" ]; then echo "$bench_name: kept $tmp" >&2; else rm -rf "$tmp"; fi
	exit "$rc"
}

# Stops one process started here (by pid) and forgets it.
stop() {
	local p="$1" q
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
		echo "$bench_name: port $1 is already in use (set BENCH_PORT_BASE)" >&2
		return 1
	fi
}

wait_port() {
	for _ in $(seq 1 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "$bench_name: nothing listens on 127.0.0.1:$1 after 5 s" >&2
	return 1
}

# The manifests every ringress of the benchmarks starts from: the class, and
# Service "origin" in namespace bench with one endpoint, 127.0.0.1:port.
origin_manifests() { # origin-port
	cat <<YAML
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: ringress}
spec: {controller: ringress.io/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: origin, namespace: bench}
spec:
  ports: [{name: http, port: 80, targetPort: $1}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: origin-1
  namespace: bench
  labels: {kubernetes.io/service-name: origin}
addressType: IPv4
ports: [{name: http, port: $1}]
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {ready: true}
YAML
}

# An Ingress sending every path to the origin's Service; with a Secret's
# name, also TLS for host localhost with that Secret.
origin_ingress() { # [tls-secret]
	local tls=""
	[ -n "${1:-}" ] && tls="
  tls:
    - hosts: [localhost]
      secretName: $1"
	cat <<YAML
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: origin, namespace: bench}
spec:
  ingressClassName: ringress$tls
  rules:
    - http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: origin, port: {number: 80}}}
YAML
}

# The flags every ringress of the benches runs with, besides its ports: one
# shard, warnings only, and the limits of bench/haproxy.cfg.in and
# bench/nginx.conf.in. HAProxy has no requests limit per connection and
# nginx is given 1,000,000 (client and upstream side); ringress's defaults
# (ingress-nginx's 1000 and 10000) would make wrk reconnect every 1000
# requests behind ringress alone.
ringress_bench_flags=(--shards 1 --log-level warn --proxy-body-size 0
	--keep-alive-requests 1000000 --upstream-keepalive-requests 1000000)

# HAProxy and nginx as the proxies compared, on PORT, from bench/*.cfg.in and
# bench/nginx.conf.in (origin $backend_port), under "${proxy_cpu[@]}"; $started
# is the process to measure (nginx: its master, whose worker is a child).
start_haproxy() { # port
	render "$here/haproxy.cfg.in" "$1" "$tmp/haproxy-$1.cfg"
	haproxy -c -q -f "$tmp/haproxy-$1.cfg" || { echo "$bench_name: invalid haproxy config" >&2; exit 1; }
	"${proxy_cpu[@]}" haproxy -db -f "$tmp/haproxy-$1.cfg" >"$tmp/haproxy-$1.log" 2>&1 9>&- &
	started=$!
	pids+=("$started")
	wait_port "$1"
}
start_nginx() { # port
	render "$here/nginx.conf.in" "$1" "$tmp/nginx-proxy-$1.conf"
	sed -i "s|pid $tmp/nginx-proxy.pid;|pid $tmp/nginx-proxy-$1.pid;|" "$tmp/nginx-proxy-$1.conf"
	"${proxy_cpu[@]}" nginx -p "$tmp" -e "$tmp/nginx-proxy-error-$1.log" -c "$tmp/nginx-proxy-$1.conf" \
		>"$tmp/nginx-proxy-$1.out" 2>&1 9>&- &
	started=$!
	pids+=("$started")
	wait_port "$1"
}

# Waits for a ringress just started: its port, then /readyz on its admin port.
wait_ready() { # port admin-port
	wait_port "$1"
	for _ in $(seq 1 100); do
		curl -fs -o /dev/null "http://127.0.0.1:$2/readyz" && break
		sleep 0.05
	done
}

# A process and its children (nginx: master and worker), one pid a line.
proc_tree() {
	echo "$1"
	cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . || true
}

# CPU ticks (utime+stime) of a process, its threads and its children.
cpu_ticks() {
	local total=0 p rest
	for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		if [ -r "/proc/$p/stat" ]; then
			# Fields after the ")" of comm: utime is the 12th, stime the 13th.
			rest="$(sed 's/^.*) //' "/proc/$p/stat")"
			set -- $rest
			total=$((total + ${12} + ${13}))
		fi
	done
	echo "$total"
}
# Busy time of CPU $1 in clock ticks (user, nice, system, irq, softirq:
# everything but idle, iowait and steal), from /proc/stat.
cpu_busy_ticks() {
	awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

# Voluntary context switches (sleeps: a thread waiting for work) of pid's
# threads and its children's.
sleeps() {
	local total=0 p t n
	for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		for t in /proc/"$p"/task/*/status; do
			n="$(awk '/^voluntary_ctxt_switches/{print $2}' "$t" 2>/dev/null)"
			total=$((total + ${n:-0}))
		done
	done
	echo "$total"
}
clk_tck="$(getconf CLK_TCK)"
