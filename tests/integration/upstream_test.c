/* upstream_test.c - issue 4, "Upstreams that never drop a request": even
 * balancing, consistent hashing, passive health (ejection, recovery), retries
 * (connect refused, resets, POST not retried), stale keep-alive connections,
 * timeouts (flag and annotation), 1 GiB streamed both ways with flat memory, a
 * slow reader, and a rolling endpoint replacement under load.
 *
 * Endpoints are told apart by address: ringress-echo listens on 127.0.0.x
 * (all of 127/8 is loopback), so one EndpointSlice lists them all on one
 * port. Misbehaving backends come from tests/support/ws/badupstream.py.
 * Test indices 40-49 and 60-65. */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(upstream, .init = h_setup, .fini = h_teardown, .timeout = 150);

#define MAX_EPS 12
#define HOST "u.local"

/* ---- helpers: backends ---- */

static const char *root_dir(void)
{
	const char *r = getenv("RINGRESS_ROOT");
	return r && *r ? r : ".";
}

static int connect_addr(const char *addr, int port, int timeout_ms, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, addr, &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS) {
			int e = -errno;
			close(fd);
			return e;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int err = 0;
		socklen_t l = sizeof(err);
		if (poll(&p, 1, timeout_ms) <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) || err) {
			close(fd);
			return err ? -err : -ETIMEDOUT;
		}
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static bool wait_addr_port(const char *addr, int port, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	do {
		int fd = connect_addr(addr, port, 200, 0);
		if (fd >= 0) {
			close(fd);
			return true;
		}
		h_sleep_ms(20);
	} while (h_now_ms() < deadline);
	return false;
}

/* ringress-echo --listen addr:port --name name; waits until it listens. */
static pid_t echo_at(const char *name, const char *addr, int port)
{
	char listen[64], logname[64];
	snprintf(listen, sizeof(listen), "%s:%d", addr, port);
	snprintf(logname, sizeof(logname), "echo-%s", name);
	const char *bin = getenv("RINGRESS_ECHO");
	char path[PATH_MAX];
	if (!bin || !*bin) {
		snprintf(path, sizeof(path), "%s/zig-out/bin/ringress-echo", root_dir());
		bin = path;
	}
	char *argv[] = {(char *)bin, "--listen", listen, "--name", (char *)name, NULL};
	pid_t p = h_spawn(logname, argv);
	cr_assert_gt(p, 0, "could not start echo %s", name);
	cr_assert(wait_addr_port(addr, port, 3000), "echo %s not listening on %s", name, listen);
	return p;
}

/* badupstream.py in a mode ("reset", "idle-close" with n as --idle-ms,
 * "reset-reused" with n as --reset-after); log "bad-NAME". */
static pid_t bad_at(const char *name, const char *addr, int port, const char *mode, int n)
{
	char listen[64], logname[64], script[PATH_MAX], num[16];
	snprintf(listen, sizeof(listen), "%s:%d", addr, port);
	snprintf(logname, sizeof(logname), "bad-%s", name);
	snprintf(script, sizeof(script), "%s/tests/support/ws/badupstream.py", root_dir());
	snprintf(num, sizeof(num), "%d", n);
	char *argv[] = {"/usr/bin/env", "python3", "-u", script, "--listen", listen, "--name", (char *)name,
			"--mode", (char *)mode, strcmp(mode, "reset-reused") ? "--idle-ms" : "--reset-after", num,
			NULL};
	pid_t p = h_spawn(logname, argv);
	cr_assert_gt(p, 0, "could not start badupstream %s", name);
	cr_assert(wait_addr_port(addr, port, 10000), "badupstream %s not listening; log:\n%s", name,
		  h_log_tail(logname, 1000));
	return p;
}

static void kill_wait(pid_t p)
{
	h_signal(p, SIGKILL);
	cr_assert_eq(h_wait_exit(p, 5000, NULL), 0, "process %d did not die", p);
}

/* ---- helpers: manifests ---- */

/* Service svc (port 80 -> port) and one EndpointSlice listing addrs. */
static void write_backend(const char *file, const char *svc, int port, const char *const *addrs, int n)
{
	char eps[MAX_EPS * 96] = "";
	size_t o = 0;
	for (int i = 0; i < n; i++)
		o += snprintf(eps + o, sizeof(eps) - o,
			      "  - addresses: [\"%s\"]\n    conditions:\n      ready: true\n", addrs[i]);
	cr_assert_eq(h_write_atomic(file,
				    "apiVersion: v1\n"
				    "kind: Service\n"
				    "metadata:\n  name: %s\n  namespace: demo\n"
				    "spec:\n  ports:\n    - name: http\n      port: 80\n      targetPort: %d\n"
				    "---\n"
				    "apiVersion: discovery.k8s.io/v1\n"
				    "kind: EndpointSlice\n"
				    "metadata:\n  name: %s-s1\n  namespace: demo\n"
				    "  labels:\n    kubernetes.io/service-name: %s\n"
				    "addressType: IPv4\n"
				    "ports:\n  - name: http\n    port: %d\n"
				    "endpoints:\n%s",
				    svc, port, svc, svc, port, n ? eps : "  []\n"),
		     0);
}

/* Ingress name for host -> svc:80, with optional annotations (YAML lines
 * "key: value" already indented by 4, or NULL). */
static void write_ingress(const char *file, const char *name, const char *host, const char *svc,
			  const char *annotations)
{
	cr_assert_eq(h_write_atomic(file,
				    "apiVersion: networking.k8s.io/v1\n"
				    "kind: Ingress\n"
				    "metadata:\n  name: %s\n  namespace: demo\n%s%s"
				    "spec:\n  ingressClassName: ringress\n"
				    "  rules:\n"
				    "    - host: \"%s\"\n"
				    "      http:\n"
				    "        paths:\n"
				    "          - path: /\n"
				    "            pathType: Prefix\n"
				    "            backend:\n"
				    "              service:\n"
				    "                name: %s\n"
				    "                port:\n"
				    "                  number: 80\n",
				    name, annotations ? "  annotations:\n" : "", annotations ? annotations : "", host,
				    svc),
		     0);
}

/* Addresses 127.0.0.(first+i). */
static void make_addrs(char buf[][16], const char **ptrs, int first, int n)
{
	for (int i = 0; i < n; i++) {
		snprintf(buf[i], 16, "127.0.0.%d", first + i);
		ptrs[i] = buf[i];
	}
}

/* Class + backend "svc" + Ingress u.local -> svc, then ringress. */
static pid_t start_ringress(int idx, const char *const *args)
{
	char *a[16] = {0};
	for (int i = 0; args && args[i] && i < 15; i++)
		a[i] = (char *)args[i];
	pid_t p = h_ringress_ready(H_PORT(idx, 0), H_PORT(idx, 9), a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7],
				   a[8], a[9], a[10], a[11], a[12], a[13], a[14], NULL);
	cr_assert_gt(p, 0, "ringress not ready (%d); log:\n%s", p, h_log_tail("ringress", 2000));
	return p;
}

static void write_base(int port, const char *const *addrs, int n, const char *annotations)
{
	cr_assert_eq(h_write("m/00-class.yaml", "%s", h_yaml_class()), 0);
	write_backend("m/10-svc.yaml", "svc", port, addrs, n);
	write_ingress("m/20-ing.yaml", "u", HOST, "svc", annotations);
}

/* ---- helpers: client ---- */

/* A keep-alive client that reopens its connection when the server said
 * Connection: close (and only then). */
struct client {
	struct h_conn c;
	int port;
	bool open;
	bool broken; /* last request failed: reopen before the next one */
};

static void client_init(struct client *cl, int port)
{
	memset(cl, 0, sizeof(*cl));
	cl->c.fd = -1;
	cl->port = port;
}

static void client_close(struct client *cl)
{
	if (cl->open)
		h_conn_close(&cl->c);
	cl->open = false;
}

/* Value of "key=" in an echo body, thread-safe (copied into out). */
static bool body_value(const struct h_resp *r, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	for (const char *p = r->body; p && *p;) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			const char *v = p + kl + 1;
			size_t vl = strcspn(v, "\n");
			if (vl >= cap)
				vl = cap - 1;
			memcpy(out, v, vl);
			out[vl] = 0;
			return true;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	out[0] = 0;
	return false;
}

static bool resp_closes(const struct h_resp *r)
{
	/* Header lookup without h_header's shared buffers (threads use it). */
	const char *p = r->head;
	while (p && (p = strcasestr(p, "\r\nConnection:"))) {
		p += 13;
		while (*p == ' ')
			p++;
		if (!strncasecmp(p, "close", 5))
			return true;
	}
	return false;
}

/* One request; returns 0 (r filled) or a negative error. */
static int client_req(struct client *cl, const char *method, const char *target, const char *headers,
		      const char *body, size_t blen, struct h_resp *r, int timeout_ms)
{
	memset(r, 0, sizeof(*r));
	if (cl->broken)
		client_close(cl);
	cl->broken = false;
	if (!cl->open) {
		int e = h_conn_open(&cl->c, cl->port, 3000);
		if (e)
			return e;
		cl->open = true;
	}
	char head[1024];
	int hl;
	if (body)
		hl = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: " HOST "\r\n%sContent-Length: %zu\r\n\r\n",
			      method, target, headers ? headers : "", blen);
	else
		hl = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: " HOST "\r\n%s\r\n", method, target,
			      headers ? headers : "");
	int e = h_conn_send(&cl->c, head, hl, timeout_ms);
	if (!e && body && blen)
		e = h_conn_send(&cl->c, body, blen, timeout_ms);
	if (!e)
		e = h_conn_response(&cl->c, r, !strcmp(method, "HEAD"), timeout_ms);
	if (e)
		cl->broken = true; /* kept until the next call, for diagnostics */
	else if (resp_closes(r))
		client_close(cl);
	return e;
}

static int svc_index(const char *name, char names[][16], int n)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

/* Number of lines of h_dir()/<log>.log containing every one of the (up to
 * two) strings. */
static int log_count(const char *log, const char *s1, const char *s2)
{
	char path[PATH_MAX], line[4096];
	snprintf(path, sizeof(path), "%s/%s.log", h_dir(), log);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	int n = 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, s1) && (!s2 || strstr(line, s2)))
			n++;
	fclose(f);
	return n;
}

/* ---- distribution ---- */

static void even_distribution(int idx, const char *shards, const char *lb)
{
	const int N = 10, REQ = 1000;
	int port = H_PORT(idx, 1);
	char ab[MAX_EPS][16], names[MAX_EPS][16];
	const char *addrs[MAX_EPS];
	make_addrs(ab, addrs, 2, N);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], 16, "e%d", i);
		echo_at(names[i], addrs[i], port);
	}
	write_base(port, addrs, N, NULL);
	const char *args[] = {"--shards", shards, "--load-balance", lb, NULL};
	start_ringress(idx, args);

	int count[MAX_EPS] = {0}, bad = 0;
	/* 20 client connections (spread over the shards by SO_REUSEPORT), 50
	 * keep-alive requests each. */
	for (int k = 0; k < 20; k++) {
		struct client cl;
		client_init(&cl, H_PORT(idx, 0));
		for (int i = 0; i < REQ / 20; i++) {
			struct h_resp r;
			int e = client_req(&cl, "GET", "/d", NULL, NULL, 0, &r, 10000);
			char svc[32];
			if (e || r.status != 200 || !body_value(&r, "service", svc, sizeof(svc)) ||
			    svc_index(svc, names, N) < 0) {
				if (bad++ < 5)
					cr_log_error("request %d/%d: error %d status %d", k, i, e, r.status);
			} else {
				count[svc_index(svc, names, N)]++;
			}
			h_resp_free(&r);
		}
		client_close(&cl);
	}
	cr_assert_eq(bad, 0, "%d of %d requests failed", bad, REQ);
	char summary[512];
	size_t o = 0;
	for (int i = 0; i < N; i++)
		o += snprintf(summary + o, sizeof(summary) - o, "%s=%d ", names[i], count[i]);
	cr_log_info("%s, %s shard(s): %s", lb, shards, summary);
	for (int i = 0; i < N; i++) {
		cr_expect_gt(count[i], 0, "endpoint %s never used (%s)", names[i], summary);
		cr_expect_leq(count[i], 2 * REQ / N, "endpoint %s got more than twice its share (%s)", names[i],
			      summary);
	}
}

Test(upstream, even_distribution_round_robin)
{
	even_distribution(40, "1", "round_robin");
}

Test(upstream, even_distribution_two_shards)
{
	even_distribution(41, "2", "round_robin");
}

Test(upstream, even_distribution_least_request_two_shards)
{
	even_distribution(42, "2", "least_request");
}

/* ---- consistent hashing ---- */

#define NKEYS 200

/* Maps each key user-<i> to an endpoint index (-1 on failure), spreading the
 * requests over 4 client connections (so over both shards). */
static int map_keys(int port, char names[][16], int n, int rot, int *map)
{
	struct client cl[4];
	int bad = 0;
	for (int k = 0; k < 4; k++)
		client_init(&cl[k], port);
	for (int i = 0; i < NKEYS; i++) {
		char hdr[64];
		snprintf(hdr, sizeof(hdr), "X-User: user-%d\r\n", i);
		struct h_resp r;
		int e = client_req(&cl[(i + rot) % 4], "GET", "/h", hdr, NULL, 0, &r, 10000);
		char svc[32];
		map[i] = -1;
		if (!e && r.status == 200 && body_value(&r, "service", svc, sizeof(svc)))
			map[i] = svc_index(svc, names, n);
		if (map[i] < 0 && bad++ < 5)
			cr_log_error("key user-%d: error %d status %d", i, e, r.status);
		h_resp_free(&r);
	}
	for (int k = 0; k < 4; k++)
		client_close(&cl[k]);
	return bad;
}

Test(upstream, hash_by_header_sticky_and_minimal_movement)
{
	const int idx = 43, N = 5, GONE = 2;
	int port = H_PORT(idx, 1);
	char ab[MAX_EPS][16], names[MAX_EPS][16];
	const char *addrs[MAX_EPS];
	make_addrs(ab, addrs, 2, N);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], 16, "h%d", i);
		echo_at(names[i], addrs[i], port);
	}
	write_base(port, addrs, N, "    nginx.ingress.kubernetes.io/upstream-hash-by: \"$http_x_user\"\n");
	const char *args[] = {"--shards", "2", NULL};
	start_ringress(idx, args);

	int m1[NKEYS], m2[NKEYS], m3[NKEYS];
	cr_assert_eq(map_keys(H_PORT(idx, 0), names, N, 0, m1), 0, "requests failed");
	cr_assert_eq(map_keys(H_PORT(idx, 0), names, N, 1, m2), 0, "requests failed");
	int per[MAX_EPS] = {0}, differ = 0;
	for (int i = 0; i < NKEYS; i++) {
		per[m1[i]]++;
		if (m1[i] != m2[i] && differ++ < 5)
			cr_log_error("user-%d: %s then %s", i, names[m1[i]], names[m2[i]]);
	}
	cr_assert_eq(differ, 0, "%d of %d keys changed endpoint without any change", differ, NKEYS);
	cr_log_info("keys per endpoint: %d %d %d %d %d", per[0], per[1], per[2], per[3], per[4]);
	for (int i = 0; i < N; i++)
		cr_expect_gt(per[i], 0, "no key hashed to endpoint %s", names[i]);
	cr_assert_gt(per[GONE], 0, "test needs keys on the removed endpoint");

	/* Remove endpoint GONE from the slice (its process keeps running, so
	 * only the configuration can move its keys). */
	const char *left[MAX_EPS];
	int nl = 0;
	for (int i = 0; i < N; i++)
		if (i != GONE)
			left[nl++] = addrs[i];
	write_backend("m/10-svc.yaml", "svc", port, left, nl);
	/* Wait until the change is applied: no key of GONE lands there. */
	bool applied = false;
	for (int64_t end = h_now_ms() + 10000; !applied && h_now_ms() < end;) {
		h_sleep_ms(200);
		cr_assert_eq(map_keys(H_PORT(idx, 0), names, N, 2, m3), 0, "requests failed after the change");
		applied = true;
		for (int i = 0; i < NKEYS; i++)
			if (m3[i] == GONE)
				applied = false;
	}
	cr_assert(applied, "keys still go to the removed endpoint 10 s after the change");
	/* Map twice more (both shards, new connections) and compare. */
	for (int pass = 0; pass < 2; pass++) {
		cr_assert_eq(map_keys(H_PORT(idx, 0), names, N, 3 + pass, m3), 0);
		int moved_wrongly = 0, moved = 0;
		for (int i = 0; i < NKEYS; i++) {
			if (m1[i] == GONE) {
				moved++;
				cr_expect_neq(m3[i], GONE);
			} else if (m3[i] != m1[i]) {
				if (moved_wrongly++ < 5)
					cr_log_error("user-%d moved from %s to %s", i, names[m1[i]], names[m3[i]]);
			}
		}
		cr_expect_eq(moved_wrongly, 0,
			     "%d keys of remaining endpoints moved (only the %d keys of the removed one may)",
			     moved_wrongly, moved);
	}
}

/* ---- passive health and retries ---- */

/* Sends n GETs over one keep-alive client; returns the number of non-200 or
 * failed requests; counts endpoints in count[] (names[]). */
static int run_gets(int port, int n, char names[][16], int nn, int *count, int pause_ms)
{
	struct client cl;
	client_init(&cl, port);
	int bad = 0;
	for (int i = 0; i < n; i++) {
		struct h_resp r;
		int e = client_req(&cl, "GET", "/g", NULL, NULL, 0, &r, 15000);
		char svc[32];
		if (e || r.status != 200) {
			if (bad++ < 5)
				cr_log_error("GET %d: error %d status %d", i, e, r.status);
		} else if (count && body_value(&r, "service", svc, sizeof(svc)) && svc_index(svc, names, nn) >= 0) {
			count[svc_index(svc, names, nn)]++;
		}
		h_resp_free(&r);
		if (pause_ms)
			h_sleep_ms(pause_ms);
	}
	client_close(&cl);
	return bad;
}

Test(upstream, killed_backend_retry_eject_recover)
{
	const int idx = 44, N = 3, DEAD = 1;
	int port = H_PORT(idx, 1);
	char ab[MAX_EPS][16], names[MAX_EPS][16];
	const char *addrs[MAX_EPS];
	pid_t pids[MAX_EPS];
	make_addrs(ab, addrs, 2, N);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], 16, "k%d", i);
		pids[i] = echo_at(names[i], addrs[i], port);
	}
	write_base(port, addrs, N, NULL);
	const char *args[] = {"--shards", "1", "--fail-timeout", "1s", NULL};
	start_ringress(idx, args);
	int hp = H_PORT(idx, 0);

	int count[MAX_EPS] = {0};
	cr_assert_eq(run_gets(hp, 30, names, N, count, 0), 0);
	for (int i = 0; i < N; i++)
		cr_assert_gt(count[i], 0, "endpoint %s unused before the kill", names[i]);

	/* Kill one: every request still succeeds (retried elsewhere). */
	kill_wait(pids[DEAD]);
	char ep[64];
	snprintf(ep, sizeof(ep), "upstream %s:%d ", addrs[DEAD], port);
	memset(count, 0, sizeof(count));
	int bad = run_gets(hp, 300, names, N, count, 0);
	cr_assert_eq(bad, 0, "%d of 300 requests failed after one of 3 endpoints was killed; log:\n%s", bad,
		     h_log_tail("ringress", 2000));
	cr_expect_eq(count[DEAD], 0);
	/* Ejected: without ejection about 100 of the 300 requests would try the
	 * dead endpoint first. With --max-fails 3 and a back-off of 1 s doubling
	 * to 8 s, it is tried a few times only. */
	int fails = log_count("ringress", ep, NULL);
	cr_log_info("failures logged for the dead endpoint over 300 requests: %d", fails);
	cr_expect_geq(fails, 1, "no failure logged for the dead endpoint (%s)", ep);
	cr_expect_leq(fails, 20, "the dead endpoint was tried %d times in 300 requests: not ejected; log:\n%s",
		      fails, h_log_tail("ringress", 1500));
	int ejected_lines = log_count("ringress", "eject", NULL);
	if (!ejected_lines)
		cr_log_warn("ringress logs no line when it ejects an endpoint");

	/* Restart it on the same address: it receives traffic again. */
	pids[DEAD] = echo_at("k1b", addrs[DEAD], port);
	strcpy(names[DEAD], "k1b");
	bool back = false;
	int64_t t0 = h_now_ms();
	while (!back && h_now_ms() - t0 < 25000) {
		memset(count, 0, sizeof(count));
		cr_assert_eq(run_gets(hp, 12, names, N, count, 0), 0, "requests failed during recovery");
		back = count[DEAD] > 0;
		if (!back)
			h_sleep_ms(250);
	}
	cr_assert(back, "the restarted endpoint got no request in 25 s (--fail-timeout 1s)");
	cr_log_info("restarted endpoint used again after %lld ms", (long long)(h_now_ms() - t0));
	/* And it takes its share again. */
	memset(count, 0, sizeof(count));
	cr_assert_eq(run_gets(hp, 60, names, N, count, 0), 0);
	cr_expect_geq(count[DEAD], 10, "restarted endpoint got %d of 60 requests", count[DEAD]);
}

Test(upstream, connect_refused_retried_any_method)
{
	const int idx = 45;
	int port = H_PORT(idx, 1);
	echo_at("ok", "127.0.0.2", port);
	const char *addrs[] = {"127.0.0.2", "127.0.0.3"}; /* nothing on .3 */
	write_base(port, addrs, 2, NULL);
	/* --max-fails 0: never ejected, so every other request meets the
	 * refusal and must be retried. */
	const char *args[] = {"--shards", "1", "--max-fails", "0", NULL};
	start_ringress(idx, args);

	struct client cl;
	client_init(&cl, H_PORT(idx, 0));
	int bad = 0;
	char body[3000];
	h_pattern(body, sizeof(body), 0);
	for (int i = 0; i < 100; i++) {
		struct h_resp r;
		bool post = i % 3 == 2; /* both methods meet the refusing endpoint */
		int e = client_req(&cl, post ? "POST" : "GET", "/r", NULL, post ? body : NULL, post ? sizeof(body) : 0,
				   &r, 15000);
		char svc[32], bb[32];
		body_value(&r, "service", svc, sizeof(svc));
		body_value(&r, "body-bytes", bb, sizeof(bb));
		if (e || r.status != 200 || strcmp(svc, "ok") || (post && atoi(bb) != (int)sizeof(body))) {
			if (bad++ < 5)
				cr_log_error("%s %d: error %d status %d service %s body-bytes %s", post ? "POST" : "GET",
					     i, e, r.status, svc, bb);
		}
		h_resp_free(&r);
	}
	client_close(&cl);
	cr_assert_eq(bad, 0, "%d of 100 requests failed with one endpoint refusing connections; log:\n%s", bad,
		     h_log_tail("ringress", 2000));
	int refused = log_count("ringress", "upstream 127.0.0.3:", "trying another endpoint");
	cr_log_info("refused connects retried: %d", refused);
	cr_expect_geq(refused, 20, "the refusing endpoint was tried only %d times: the test did not exercise retries",
		      refused);
}

Test(upstream, resetting_backend_gets_retried)
{
	const int idx = 46;
	int port = H_PORT(idx, 1);
	echo_at("ok", "127.0.0.2", port);
	bad_at("rst", "127.0.0.3", port, "reset", 0);
	const char *addrs[] = {"127.0.0.2", "127.0.0.3"};
	write_base(port, addrs, 2, NULL);
	const char *args[] = {"--shards", "1", "--max-fails", "0", NULL};
	start_ringress(idx, args);

	char names[1][16] = {"ok"};
	int count[1] = {0};
	int bad = run_gets(H_PORT(idx, 0), 60, names, 1, count, 0);
	cr_assert_eq(bad, 0, "%d of 60 GETs failed with one endpoint resetting; log:\n%s", bad,
		     h_log_tail("ringress", 2000));
	cr_expect_eq(count[0], 60);
	int resets = log_count("bad-rst", "request ", NULL);
	cr_log_info("requests reset by the bad endpoint: %d", resets);
	cr_expect_geq(resets, 10, "the resetting endpoint saw only %d requests", resets);
}

Test(upstream, post_not_retried_after_sending)
{
	const int idx = 47;
	int port = H_PORT(idx, 1);
	/* Two endpoints that both read the request and reset without answering. */
	bad_at("r1", "127.0.0.2", port, "reset", 0);
	bad_at("r2", "127.0.0.3", port, "reset", 0);
	const char *addrs[] = {"127.0.0.2", "127.0.0.3"};
	write_base(port, addrs, 2, NULL);
	const char *args[] = {"--shards", "1", "--max-fails", "0", NULL};
	start_ringress(idx, args);

	char body[1000];
	h_pattern(body, sizeof(body), 0);
	for (int i = 0; i < 3; i++) {
		int before = log_count("bad-r1", "request ", NULL) + log_count("bad-r2", "request ", NULL);
		struct client cl;
		client_init(&cl, H_PORT(idx, 0));
		struct h_resp r;
		int e = client_req(&cl, "POST", "/order", NULL, body, sizeof(body), &r, 15000);
		client_close(&cl);
		cr_assert_eq(e, 0, "POST %d: no response (%d)", i, e);
		cr_expect_eq(r.status, 502, "POST %d: status %d, want 502", i, r.status);
		h_resp_free(&r);
		h_sleep_ms(300); /* the backends' log lines */
		int after = log_count("bad-r1", "request ", NULL) + log_count("bad-r2", "request ", NULL);
		cr_expect_eq(after - before, 1, "POST %d reached the backends %d times, want exactly 1", i,
			     after - before);
		cr_expect_eq(log_count("bad-r1", "request ", "POST") + log_count("bad-r2", "request ", "POST"),
			     after, "only POSTs so far");
	}
	/* Contrast: a GET is idempotent and goes to the other endpoint. */
	int before = log_count("bad-r1", "request ", NULL) + log_count("bad-r2", "request ", NULL);
	struct h_resp r;
	cr_assert_eq(h_get(&r, H_PORT(idx, 0), HOST, "/item"), 0);
	cr_expect_eq(r.status, 502);
	h_resp_free(&r);
	h_sleep_ms(300);
	int after = log_count("bad-r1", "request ", NULL) + log_count("bad-r2", "request ", NULL);
	cr_expect_geq(after - before, 2, "a GET that got a reset was not retried (%d attempts)", after - before);
}

Test(upstream, upstream_closing_idle_keepalive_never_502)
{
	const int idx = 48;
	int port = H_PORT(idx, 1);
	bad_at("idle", "127.0.0.2", port, "idle-close", 100);
	const char *addrs[] = {"127.0.0.2"};
	write_base(port, addrs, 1, NULL);
	const char *args[] = {"--shards", "1", NULL};
	start_ringress(idx, args);

	/* Pauses around and above the upstream's 100 ms idle close, so that
	 * ringress reuses connections the upstream is closing or has closed. */
	static const int pauses[] = {150, 300, 200, 95, 100, 105, 250, 180, 0, 120};
	struct client cl;
	client_init(&cl, H_PORT(idx, 0));
	int bad = 0, reused = 0;
	char body[2000];
	h_pattern(body, sizeof(body), 0);
	for (int i = 0; i < 200; i++) {
		struct h_resp r;
		bool post = i % 4 == 3;
		int e = client_req(&cl, post ? "POST" : "GET", "/k", NULL, post ? body : NULL, post ? sizeof(body) : 0,
				   &r, 15000);
		char v[32];
		if (e || r.status != 200) {
			if (bad++ < 5)
				cr_log_error("request %d (%s): error %d status %d", i, post ? "POST" : "GET", e,
					     r.status);
		} else if (body_value(&r, "conn-requests", v, sizeof(v)) && atoi(v) > 1) {
			reused++;
		}
		h_resp_free(&r);
		h_sleep_ms(pauses[i % 10]);
	}
	client_close(&cl);
	int idle_closes = log_count("bad-idle", "closed idle", NULL);
	cr_log_info("upstream idle closes %d, responses on reused upstream connections %d, stale retries %d",
		    idle_closes, reused, log_count("ringress", "closed a kept-alive connection", NULL));
	cr_assert_eq(bad, 0, "%d of 200 requests failed against an upstream closing idle connections after 100 ms; log:\n%s",
		     bad, h_log_tail("ringress", 2000));
	cr_expect_geq(idle_closes, 20, "the upstream closed only %d idle connections: test not exercised", idle_closes);
}

/* A request body larger than the replay list holds (a Content-Length of
 * 256 KiB, above its 4 buffers of 16 KiB) never goes on a kept-alive
 * connection: one that the upstream dropped while it idled could not be
 * retried once more than that had gone out. The upstream here answers the
 * first request of each connection and resets a second one after 100 KiB
 * of its body; on a reused connection, the upload got a 502. */
/* One shard before a badupstream "name" in mode reset-reused (reset after
 * reset_after bytes of a second request's body), and a GET through cl whose
 * upstream connection is then kept alive. */
static void start_reset_reused(int idx, const char *name, int reset_after, struct client *cl)
{
	int port = H_PORT(idx, 1);
	bad_at(name, "127.0.0.2", port, "reset-reused", reset_after);
	const char *addrs[] = {"127.0.0.2"};
	write_base(port, addrs, 1, NULL);
	const char *args[] = {"--shards", "1", NULL};
	start_ringress(idx, args);
	client_init(cl, H_PORT(idx, 0));
	struct h_resp r;
	cr_assert_eq(client_req(cl, "GET", "/warm", NULL, NULL, 0, &r, 15000), 0);
	cr_expect_eq(r.status, 200, "GET: %d", r.status);
	h_resp_free(&r);
}

Test(upstream, large_upload_never_on_a_reused_connection)
{
	const int idx = 74;
	struct client cl;
	start_reset_reused(idx, "rr", 100 * 1024, &cl);
	struct h_resp r;
	char v[32] = "";
	enum { BIG = 256 * 1024 };
	static char body[BIG];
	h_pattern(body, sizeof(body), 0);
	for (int i = 0; i < 3; i++) {
		int e = client_req(&cl, "POST", "/upload", NULL, body, sizeof(body), &r, 15000);
		cr_assert_eq(e, 0, "upload %d: no response (%d); log:\n%s", i, e, h_log_tail("ringress", 1500));
		cr_expect_eq(r.status, 200, "upload %d: %d; log:\n%s", i, r.status, h_log_tail("ringress", 1500));
		cr_expect(body_value(&r, "body-bytes", v, sizeof(v)) && atoi(v) == BIG, "upload %d: body-bytes %s", i,
			  v);
		h_resp_free(&r);
	}
	h_sleep_ms(200); /* the upstream's log lines */
	cr_expect_eq(log_count("bad-rr", "reset request", NULL), 0, "an upload went on a kept-alive connection");
	/* A GET does take a kept-alive connection: the upstream resets it, and
	 * ringress retries on a fresh one (the upstream's reset is real). */
	cr_assert_eq(client_req(&cl, "GET", "/again", NULL, NULL, 0, &r, 15000), 0);
	cr_expect_eq(r.status, 200, "GET on a reset kept-alive connection: %d", r.status);
	h_resp_free(&r);
	client_close(&cl);
	h_sleep_ms(200);
	cr_expect_geq(log_count("bad-rr", "reset request", NULL), 1, "the upstream reset no reused connection");
}

/* A body that fits the replay list's bytes but arrives in more pieces than
 * it has slots (a client writing 1 KiB at a time) is still kept whole for a
 * replay: on a kept-alive connection that the upstream resets after 6 KiB
 * of it, the POST is retried on a fresh connection with every byte, in
 * order. Before, the fifth piece dropped the replay and the client got a
 * 502. A body of exactly the list's 64 KiB (the second upload) goes on a
 * kept-alive connection too, and survives its reset the same way. */
Test(upstream, upload_in_many_pieces_replayed_on_a_fresh_connection)
{
	const int idx = 75;
	struct client cl;
	start_reset_reused(idx, "rp", 6 * 1024, &cl);
	client_close(&cl);

	static const struct { int pieces, piece; } uploads[] = {{12, 1024}, {16, 4096}};
	static char body[64 * 1024];
	for (int u = 0; u < 2; u++) {
		int len = uploads[u].pieces * uploads[u].piece;
		h_pattern(body, (size_t)len, 7);
		struct h_conn hc;
		cr_assert_eq(h_conn_open(&hc, H_PORT(idx, 0), 3000), 0);
		cr_assert_eq(h_conn_sendf(&hc, "POST /pieces HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n",
					  HOST, len),
			     0);
		for (int i = 0; i < uploads[u].pieces; i++) {
			h_sleep_ms(20); /* each piece its own receive */
			cr_assert_eq(h_conn_send(&hc, body + i * uploads[u].piece, (size_t)uploads[u].piece, 3000), 0,
				     "upload %d, piece %d", u, i);
		}
		struct h_resp r;
		cr_assert_eq(h_conn_response(&hc, &r, false, 15000), 0, "upload %d: no response; log:\n%s", u,
			     h_log_tail("ringress", 1500));
		char v[32] = "", crc[32] = "", want[32];
		snprintf(want, sizeof(want), "%08x", h_crc32(0, body, (size_t)len));
		cr_expect_eq(r.status, 200, "upload of %d bytes in %d pieces: %d; log:\n%s", len, uploads[u].pieces,
			     r.status, h_log_tail("ringress", 1500));
		cr_expect(body_value(&r, "body-bytes", v, sizeof(v)) && atoi(v) == len, "upload %d: body-bytes %s", u,
			  v);
		cr_expect(body_value(&r, "body-crc", crc, sizeof(crc)) && strcmp(crc, want) == 0,
			  "upload %d: the replayed body differs: crc %s, sent %s", u, crc, want);
		h_resp_free(&r);
		h_conn_close(&hc);
		h_sleep_ms(200); /* the upstream's log lines */
		cr_expect_geq(log_count("bad-rp", "reset request", NULL), u + 1,
			      "upload %d: the upstream reset no reused connection: the replay was not exercised", u);
	}
}

/* ---- timeouts ---- */

Test(upstream, slow_backend_504)
{
	const int idx = 49;
	int port = H_PORT(idx, 1);
	echo_at("slow", "127.0.0.2", port);
	const char *addrs[] = {"127.0.0.2"};
	write_base(port, addrs, 1, NULL);
	const char *args[] = {"--shards", "1", "--proxy-read-timeout", "1s", NULL};
	start_ringress(idx, args);

	struct h_resp r;
	cr_assert_eq(h_get(&r, H_PORT(idx, 0), HOST, "/_/sleep/200"), 0);
	cr_expect_eq(r.status, 200, "a 200 ms response with a 1 s read timeout: %d", r.status);
	h_resp_free(&r);
	int64_t t0 = h_now_ms();
	struct client cl;
	client_init(&cl, H_PORT(idx, 0));
	int e = client_req(&cl, "GET", "/_/sleep/6000", NULL, NULL, 0, &r, 20000);
	cr_assert_eq(e, 0, "no response (%d)", e);
	cr_expect_eq(r.status, 504, "a 6 s response with --proxy-read-timeout 1s: %d", r.status);
	cr_log_info("504 after %lld ms", (long long)(h_now_ms() - t0));
	h_resp_free(&r);
	client_close(&cl);
	/* POST: a timeout after sending is not retried either; still 504. */
	client_init(&cl, H_PORT(idx, 0));
	e = client_req(&cl, "POST", "/_/sleep/6000", NULL, "x", 1, &r, 20000);
	cr_assert_eq(e, 0);
	cr_expect_eq(r.status, 504, "POST to a slow backend: %d", r.status);
	h_resp_free(&r);
	client_close(&cl);
}

Test(upstream, read_timeout_annotation_per_ingress)
{
	const int idx = 60;
	int port = H_PORT(idx, 1);
	echo_at("slow", "127.0.0.2", port);
	const char *addrs[] = {"127.0.0.2"};
	write_base(port, addrs, 1, "    nginx.ingress.kubernetes.io/proxy-read-timeout: \"1\"\n");
	write_ingress("m/21-fast.yaml", "f", "f.local", "svc", NULL);
	const char *args[] = {"--shards", "1", NULL}; /* default read timeout 60 s */
	start_ringress(idx, args);

	struct h_conn c;
	struct h_resp r;
	/* Ingress with the annotation: 504. */
	cr_assert_eq(h_conn_open(&c, H_PORT(idx, 0), 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET /_/sleep/4000 HTTP/1.1\r\nHost: " HOST "\r\n\r\n"), 0);
	cr_assert_eq(h_conn_response(&c, &r, false, 20000), 0);
	cr_expect_eq(r.status, 504, "Ingress with proxy-read-timeout \"1\": %d for a 4 s response", r.status);
	h_resp_free(&r);
	h_conn_close(&c);
	/* The other Ingress to the same Service keeps the 60 s default. */
	cr_assert_eq(h_conn_open(&c, H_PORT(idx, 0), 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET /_/sleep/2500 HTTP/1.1\r\nHost: f.local\r\n\r\n"), 0);
	cr_assert_eq(h_conn_response(&c, &r, false, 20000), 0);
	cr_expect_eq(r.status, 200, "Ingress without the annotation: %d for a 2.5 s response", r.status);
	h_resp_free(&r);
	h_conn_close(&c);
}

/* ---- bodies: 1 GiB both ways, slow reader ---- */

#define GIB (1024ull * 1024 * 1024)
#define RSS_LIMIT_KB (80 * 1024)

struct xfer {
	uint64_t sent, recvd, body_at; /* body_at: offset of the body in the received stream */
	long max_rss_kb;
	int status;
	uint64_t clen;
	bool mismatch;
};

/* Sends head then (if upload) up_len pattern bytes, while reading a response
 * whose body must be the pattern of want bytes. Samples ringress's RSS. */
static int stream_pattern(int port, pid_t rp, const char *head, uint64_t up_len, uint64_t want, struct xfer *x,
			  int timeout_ms)
{
	memset(x, 0, sizeof(*x));
	int fd = connect_addr("127.0.0.1", port, 2000, 0);
	if (fd < 0)
		return fd;
	size_t hl = strlen(head);
	static char pat[65536 + 64];
	h_pattern(pat, sizeof(pat), 0);
	char *rbuf = malloc(1 << 20);
	char hbuf[8192];
	size_t hlen = 0;
	bool in_body = false;
	uint64_t got = 0;
	int64_t deadline = h_now_ms() + timeout_ms, next_sample = 0;
	uint64_t total_up = hl + up_len;
	int rc = 0;
	while (!in_body || got < want) {
		int64_t now = h_now_ms();
		if (now > deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		if (now >= next_sample) {
			long kb = h_rss_kb(rp);
			if (kb > x->max_rss_kb)
				x->max_rss_kb = kb;
			next_sample = now + 50;
		}
		struct pollfd p = {.fd = fd, .events = POLLIN | (x->sent < total_up ? POLLOUT : 0)};
		poll(&p, 1, 50);
		if (x->sent < total_up && (p.revents & POLLOUT)) {
			ssize_t n;
			if (x->sent < hl) {
				n = send(fd, head + x->sent, hl - x->sent, MSG_NOSIGNAL);
			} else {
				uint64_t off = x->sent - hl, left = up_len - off;
				n = send(fd, pat + (off & 63), left < 65536 ? left : 65536, MSG_NOSIGNAL);
			}
			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				rc = -errno;
				break;
			}
			if (n > 0)
				x->sent += n;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, rbuf, 1 << 20, 0);
			if (n == 0) {
				rc = -EPIPE;
				break;
			}
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				rc = -errno;
				break;
			}
			x->recvd += n;
			char *d = rbuf;
			if (!in_body) {
				size_t k = (size_t)n < sizeof(hbuf) - 1 - hlen ? (size_t)n : sizeof(hbuf) - 1 - hlen;
				memcpy(hbuf + hlen, d, k);
				hlen += k;
				hbuf[hlen] = 0;
				char *e = strstr(hbuf, "\r\n\r\n");
				if (!e) {
					if (hlen == sizeof(hbuf) - 1) {
						rc = -EPROTO;
						break;
					}
					continue;
				}
				size_t head_len = e + 4 - hbuf;
				x->status = atoi(hbuf + 9);
				const char *cl = strcasestr(hbuf, "\r\nContent-Length:");
				x->clen = cl ? strtoull(cl + 17, NULL, 10) : 0;
				if (x->status != 200) {
					rc = -EPROTO;
					break;
				}
				in_body = true;
				size_t consumed_from_d = head_len - (hlen - k);
				d += consumed_from_d;
				n -= consumed_from_d;
			}
			/* Compare with the pattern, 64-byte aligned chunks. */
			size_t left = (size_t)n;
			while (left) {
				size_t k = left < 65536 ? left : 65536;
				if (memcmp(d, pat + (got & 63), k))
					x->mismatch = true;
				d += k;
				left -= k;
				got += k;
			}
		}
	}
	long kb = h_rss_kb(rp);
	if (kb > x->max_rss_kb)
		x->max_rss_kb = kb;
	x->body_at = got;
	free(rbuf);
	close(fd);
	return rc;
}

static pid_t start_stream_env(int idx)
{
	int port = H_PORT(idx, 1);
	echo_at("big", "127.0.0.2", port);
	const char *addrs[] = {"127.0.0.2"};
	write_base(port, addrs, 1, NULL);
	const char *args[] = {"--shards", "2", "--proxy-body-size", "0", NULL};
	return start_ringress(idx, args);
}

Test(upstream, one_gib_upload_echoed_flat_memory, .timeout = 240)
{
	const int idx = 61;
	pid_t rp = start_stream_env(idx);
	long base = h_rss_kb(rp);
	char head[256];
	snprintf(head, sizeof(head), "POST /_/echo HTTP/1.1\r\nHost: " HOST "\r\nContent-Length: %llu\r\n\r\n", GIB);
	struct xfer x;
	int64_t t0 = h_now_ms();
	int e = stream_pattern(H_PORT(idx, 0), rp, head, GIB, GIB, &x, 180000);
	int64_t ms = h_now_ms() - t0;
	cr_log_info("1 GiB up + echoed down in %lld ms; ringress RSS %ld KiB before, %ld KiB max", (long long)ms, base,
		    x.max_rss_kb);
	cr_assert_eq(e, 0, "transfer failed (%d): status %d, sent %llu, body received %llu; log:\n%s", e, x.status,
		     (unsigned long long)x.sent, (unsigned long long)x.body_at, h_log_tail("ringress", 1500));
	cr_expect_eq(x.clen, GIB, "Content-Length of the echo: %llu", (unsigned long long)x.clen);
	cr_expect_eq(x.body_at, GIB);
	cr_expect_not(x.mismatch, "echoed bytes differ from the bytes sent");
	cr_expect_lt(x.max_rss_kb, RSS_LIMIT_KB, "ringress RSS reached %ld KiB during a 1 GiB echo", x.max_rss_kb);
}

Test(upstream, one_gib_download_flat_memory, .timeout = 240)
{
	const int idx = 62;
	pid_t rp = start_stream_env(idx);
	long base = h_rss_kb(rp);
	struct xfer x;
	int64_t t0 = h_now_ms();
	int e = stream_pattern(H_PORT(idx, 0), rp,
			       "GET /_/bytes/1073741824 HTTP/1.1\r\nHost: " HOST "\r\n\r\n", 0, GIB, &x, 180000);
	cr_log_info("1 GiB down in %lld ms; ringress RSS %ld KiB before, %ld KiB max", (long long)(h_now_ms() - t0),
		    base, x.max_rss_kb);
	cr_assert_eq(e, 0, "download failed (%d): status %d, body received %llu", e, x.status,
		     (unsigned long long)x.body_at);
	cr_expect_eq(x.clen, GIB);
	cr_expect_eq(x.body_at, GIB);
	cr_expect_not(x.mismatch, "downloaded bytes differ from the pattern");
	cr_expect_lt(x.max_rss_kb, RSS_LIMIT_KB, "ringress RSS reached %ld KiB during a 1 GiB download", x.max_rss_kb);

	/* Upload only (the echo backend answers with a short summary). */
	char head[256];
	snprintf(head, sizeof(head), "PUT /up HTTP/1.1\r\nHost: " HOST "\r\nContent-Length: %llu\r\n\r\n", GIB);
	int fd = connect_addr("127.0.0.1", H_PORT(idx, 0), 2000, 0);
	cr_assert_geq(fd, 0);
	struct h_conn c = {.fd = fd};
	cr_assert_eq(h_conn_send(&c, head, strlen(head), 5000), 0);
	static char pat[65536 + 64];
	h_pattern(pat, sizeof(pat), 0);
	uint32_t crc = 0;
	long max_kb = 0;
	t0 = h_now_ms();
	for (uint64_t off = 0; off < GIB; off += 65536) {
		cr_assert_eq(h_conn_send(&c, pat, 65536, 30000), 0, "upload stalled at %llu", (unsigned long long)off);
		crc = h_crc32(crc, pat, 65536);
		if ((off & ((1 << 24) - 1)) == 0) {
			long kb = h_rss_kb(rp);
			if (kb > max_kb)
				max_kb = kb;
		}
	}
	struct h_resp r;
	cr_assert_eq(h_conn_response(&c, &r, false, 30000), 0);
	cr_log_info("1 GiB up in %lld ms; ringress RSS max %ld KiB", (long long)(h_now_ms() - t0), max_kb);
	cr_expect_eq(r.status, 200);
	char v[32];
	body_value(&r, "body-bytes", v, sizeof(v));
	cr_expect_eq(strtoull(v, NULL, 10), GIB, "backend saw %s bytes", v);
	body_value(&r, "body-crc32", v, sizeof(v));
	char want[16];
	snprintf(want, sizeof(want), "%08x", crc);
	cr_expect_str_eq(v, want, "body CRC at the backend");
	cr_expect_lt(max_kb, RSS_LIMIT_KB, "ringress RSS reached %ld KiB during a 1 GiB upload", max_kb);
	h_resp_free(&r);
	h_conn_close(&c);
}

Test(upstream, slow_reader_bounded_memory)
{
	const int idx = 63;
	pid_t rp = start_stream_env(idx);
	long base = h_rss_kb(rp);
	int fd = connect_addr("127.0.0.1", H_PORT(idx, 0), 2000, 64 * 1024);
	cr_assert_geq(fd, 0);
	struct h_conn c = {.fd = fd};
	cr_assert_eq(h_conn_sendf(&c, "GET /_/bytes/209715200 HTTP/1.1\r\nHost: " HOST "\r\n\r\n"), 0);
	char buf[1024];
	long max_kb = base;
	uint64_t got = 0;
	int64_t t0 = h_now_ms();
	while (h_now_ms() - t0 < 2500) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0)
			break;
		if (n > 0)
			got += n;
		long kb = h_rss_kb(rp);
		if (kb > max_kb)
			max_kb = kb;
		h_sleep_ms(3);
	}
	cr_log_info("slow reader: %llu bytes in 2.5 s; ringress RSS %ld KiB before, %ld KiB max",
		    (unsigned long long)got, base, max_kb);
	cr_assert_gt(got, 1024, "nothing received");
	cr_expect_lt(max_kb, RSS_LIMIT_KB, "ringress RSS %ld KiB with a slow reader of a 200 MiB response", max_kb);
	cr_expect_lt(max_kb - base, 32 * 1024, "ringress RSS grew by %ld KiB for one slow reader", max_kb - base);
	close(fd);
	/* Still serving. */
	struct h_resp r;
	cr_assert_eq(h_get(&r, H_PORT(idx, 0), HOST, "/after"), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
}

/* ---- rolling replacement under load ---- */

struct load {
	int port;
	atomic_bool stop;
	atomic_int ok, non2xx, errors;
	char first_error[1024];
	pthread_mutex_t lock;
	int per[8]; /* requests per generation-name index */
	char names[8][16];
	int64_t t0;
};

static void *load_main(void *arg)
{
	struct load *L = arg;
	struct client cl;
	client_init(&cl, L->port);
	char last[32] = "-";
	while (!atomic_load(&L->stop)) {
		struct h_resp r;
		int64_t start = h_now_ms() - L->t0;
		bool fresh = !cl.open;
		int e = client_req(&cl, "GET", "/roll", NULL, NULL, 0, &r, 15000);
		if (e || r.status < 200 || r.status > 299) {
			if (e)
				atomic_fetch_add(&L->errors, 1);
			else
				atomic_fetch_add(&L->non2xx, 1);
			pthread_mutex_lock(&L->lock);
			if (!L->first_error[0])
				snprintf(L->first_error, sizeof(L->first_error),
					 "error %d status %d for a request sent at +%lld ms on a %s client connection "
					 "(its previous response came from %s)",
					 e, r.status, (long long)start, fresh ? "new" : "kept-alive", last);
			if (r.head || (cl.open && cl.c.len)) {
				size_t fo = strlen(L->first_error);
				snprintf(L->first_error + fo, sizeof(L->first_error) - fo,
					 "; head [%.300s] body %zu bytes [%.100s] unread %zu bytes [%.200s]",
					 r.head ? r.head : "", r.body_len, r.body ? r.body : "", cl.open ? cl.c.len : 0,
					 cl.open && cl.c.buf ? cl.c.buf : "");
			}
			pthread_mutex_unlock(&L->lock);
			client_close(&cl);
		} else {
			atomic_fetch_add(&L->ok, 1);
			char svc[32];
			if (body_value(&r, "service", svc, sizeof(svc))) {
				snprintf(last, sizeof(last), "%s", svc);
				pthread_mutex_lock(&L->lock);
				for (int i = 0; i < 8; i++)
					if (!strcmp(L->names[i], svc))
						L->per[i]++;
				pthread_mutex_unlock(&L->lock);
			}
		}
		h_resp_free(&r);
	}
	client_close(&cl);
	return NULL;
}

Test(upstream, rolling_replacement_under_load_zero_errors)
{
	const int idx = 64, N = 4;
	int port = H_PORT(idx, 1);
	char ab[8][16];
	const char *addrs[8];
	make_addrs(ab, addrs, 2, 8); /* old: .2-.5, new: .6-.9 */
	pid_t pids[8];
	/* The load runs in child processes (the harness's response reader is
	 * not thread-safe), sharing this block. */
	struct load *Lp = mmap(NULL, sizeof(struct load), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(Lp, MAP_FAILED);
	struct load *L = Lp;
	memset(L, 0, sizeof(*L));
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&L->lock, &ma);
	for (int i = 0; i < 8; i++)
		snprintf(L->names[i], 16, "%s%d", i < N ? "old" : "new", i % N);
	for (int i = 0; i < N; i++)
		pids[i] = echo_at(L->names[i], addrs[i], port);
	write_base(port, addrs, N, NULL);
	const char *args[] = {"--shards", "2", NULL};
	start_ringress(idx, args);
	L->port = H_PORT(idx, 0);
	L->t0 = h_now_ms();
	char steps[512] = "";
	size_t so = 0;

	pid_t th[3];
	for (int i = 0; i < 3; i++) {
		th[i] = fork();
		cr_assert_geq(th[i], 0);
		if (th[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			load_main(L);
			_exit(0);
		}
	}
	h_sleep_ms(1000);
	const char *cur[N];
	for (int i = 0; i < N; i++)
		cur[i] = addrs[i];
	for (int step = 0; step < N; step++) {
		pids[N + step] = echo_at(L->names[N + step], addrs[N + step], port);
		cur[step] = addrs[N + step];
		so += snprintf(steps + so, sizeof(steps) - so, "+%lld %s added, %s removed; ",
			       (long long)(h_now_ms() - L->t0), L->names[N + step], L->names[step]);
		write_backend("m/10-svc.yaml", "svc", port, cur, N);
		h_sleep_ms(700); /* > --sync-period (200 ms) */
		so += snprintf(steps + so, sizeof(steps) - so, "+%lld %s killed; ", (long long)(h_now_ms() - L->t0),
			       L->names[step]);
		kill_wait(pids[step]);
		h_sleep_ms(500);
	}
	h_sleep_ms(1000);
	atomic_store(&L->stop, true);
	for (int i = 0; i < 3; i++) {
		/* A request in flight ends within its 15 s timeout. */
		int64_t end = h_now_ms() + 30000;
		while (waitpid(th[i], NULL, WNOHANG) == 0 && h_now_ms() < end)
			h_sleep_ms(20);
		kill(th[i], SIGKILL);
		waitpid(th[i], NULL, 0);
	}
	char summary[256];
	size_t o = 0;
	for (int i = 0; i < 8; i++)
		o += snprintf(summary + o, sizeof(summary) - o, "%s=%d ", L->names[i], L->per[i]);
	cr_log_info("rolling: %d ok, %d non-2xx, %d errors; %s", atomic_load(&L->ok), atomic_load(&L->non2xx),
		    atomic_load(&L->errors), summary);
	cr_assert_gt(atomic_load(&L->ok), 500, "too little load to judge (%d requests)", atomic_load(&L->ok));
	cr_expect_eq(atomic_load(&L->non2xx) + atomic_load(&L->errors), 0,
		     "%d non-2xx and %d failed requests during the rolling replacement (first: %s; steps: %s); "
		     "log:\n%s",
		     atomic_load(&L->non2xx), atomic_load(&L->errors), L->first_error, steps,
		     h_log_tail("ringress", 2000));
	for (int i = N; i < 8; i++)
		cr_expect_gt(L->per[i], 0, "new endpoint %s never used", L->names[i]);
	munmap(Lp, sizeof(struct load));
}
