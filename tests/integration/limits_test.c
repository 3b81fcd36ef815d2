/* limits_test.c - what ringress refuses and the timeouts it enforces:
 * 431, 413, 400 for malformed or ambiguous requests, 502 / 504 for upstream
 * failures, client header timeout, random heads that must not put an upstream
 * connection out of step. Test indices 50-69. */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <strings.h>
#include <unistd.h>

TestSuite(limits, .init = h_setup, .fini = h_teardown, .timeout = 40);

/* Backend "web" on port 1 (host l.local /), a Service "dead" whose endpoint
 * is port 3 where nothing listens (host dead.local), then ringress --shards 1
 * with the given extra flags (NULL-terminated, at most 4). */
static pid_t web_pid;

static int start(int idx, const char *a1, const char *a2, const char *a3, const char *a4)
{
	web_pid = h_echo("web", H_PORT(idx, 1));
	cr_assert_gt(web_pid, 0, "echo did not start");
	cr_assert_eq(h_write("m/00-class.yaml", "%s", h_yaml_class()), 0);
	cr_assert_eq(h_write("m/10-web.yaml", "%s", h_yaml_backend("demo", "web", H_PORT(idx, 1), true)), 0);
	cr_assert_eq(h_write("m/11-dead.yaml", "%s", h_yaml_backend("demo", "dead", H_PORT(idx, 3), true)), 0);
	cr_assert_eq(h_write("m/20-ing.yaml", "%s---\n%s",
			     h_yaml_ingress("demo", "l", "l.local", "/", "Prefix", "web"),
			     h_yaml_ingress("demo", "d", "dead.local", "/", "Prefix", "dead")),
		     0);
	pid_t p = h_ringress_ready(H_PORT(idx, 0), H_PORT(idx, 9), "--shards", "1", a1, a2, a3, a4, NULL);
	cr_assert_gt(p, 0, "ringress not ready (%d); log:\n%s", p, h_log_tail("ringress", 2000));
	return H_PORT(idx, 0);
}

/* Sends raw bytes on a fresh connection and returns the response status
 * (0 if the connection closed without one, -1 on timeout). */
static int raw_status(int port, const char *req, size_t len)
{
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	int e = h_conn_send(&c, req, len, 3000);
	struct h_resp r;
	/* A send error (ringress answered and closed early) still leaves the
	 * response to read. */
	(void)e;
	e = h_conn_response(&c, &r, false, 5000);
	int st = e == 0 ? r.status : e == -ETIMEDOUT ? -1 : 0;
	h_resp_free(&r);
	h_conn_close(&c);
	return st;
}

Test(limits, header_too_large_431)
{
	int port = start(50, NULL, NULL, NULL, NULL);
	size_t big = 40 * 1024;
	char *v = malloc(big + 1);
	memset(v, 'a', big);
	v[big] = 0;
	char *req = NULL;
	int n = asprintf(&req, "GET / HTTP/1.1\r\nHost: l.local\r\nX-Big: %s\r\n\r\n", v);
	cr_assert_gt(n, 0);
	int st = raw_status(port, req, n);
	cr_expect_eq(st, 431, "40 KiB header: status %d", st);
	free(req);
	/* Many small headers adding up to > 32 KiB. */
	char *many = malloc(64 * 1024);
	size_t off = (size_t)sprintf(many, "GET / HTTP/1.1\r\nHost: l.local\r\n");
	for (int i = 0; i < 400; i++)
		off += sprintf(many + off, "X-H%d: %090d\r\n", i, i);
	off += sprintf(many + off, "\r\n");
	st = raw_status(port, many, off);
	cr_expect_eq(st, 431, "400 headers of 100 bytes: status %d", st);
	/* A long URL (> 32 KiB) too. */
	off = (size_t)sprintf(many, "GET /");
	memset(many + off, 'u', 34 * 1024);
	off += 34 * 1024;
	off += sprintf(many + off, " HTTP/1.1\r\nHost: l.local\r\n\r\n");
	st = raw_status(port, many, off);
	cr_expect(st == 431 || st == 414, "34 KiB URL: status %d", st);
	free(many);
	free(v);
	/* Just under the limit is fine. */
	v = malloc(20 * 1024 + 1);
	memset(v, 'b', 20 * 1024);
	v[20 * 1024] = 0;
	n = asprintf(&req, "GET / HTTP/1.1\r\nHost: l.local\r\nX-Big: %s\r\nConnection: close\r\n\r\n", v);
	st = raw_status(port, req, n);
	cr_expect_eq(st, 200, "20 KiB header: status %d", st);
	free(req);
	free(v);
}

Test(limits, body_too_large_413)
{
	int port = start(51, "--proxy-body-size", "1k", NULL, NULL);
	char body[4096];
	memset(body, 'x', sizeof(body));
	char *req = NULL;
	/* Declared length above the limit: 413 before any body is read. */
	int n = asprintf(&req, "POST / HTTP/1.1\r\nHost: l.local\r\nContent-Length: 2048\r\n\r\n%.*s", 2048, body);
	int st = raw_status(port, req, n);
	cr_expect_eq(st, 413, "Content-Length 2048 > 1k: %d", st);
	free(req);
	/* Chunked body that grows above the limit. */
	n = asprintf(&req, "POST / HTTP/1.1\r\nHost: l.local\r\nTransfer-Encoding: chunked\r\n\r\n"
			   "800\r\n%.*s\r\n0\r\n\r\n", 2048, body);
	st = raw_status(port, req, n);
	cr_expect_eq(st, 413, "chunked 2048 bytes > 1k: %d", st);
	free(req);
	/* At the limit: accepted. */
	n = asprintf(&req, "POST / HTTP/1.1\r\nHost: l.local\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n%.*s",
		     1024, body);
	st = raw_status(port, req, n);
	cr_expect_eq(st, 200, "Content-Length 1024 = 1k: %d", st);
	free(req);
}

Test(limits, malformed_requests_400)
{
	int port = start(52, NULL, NULL, NULL, NULL);
#define CASE(w, r) {w, r, sizeof(r) - 1}
	struct {
		const char *what, *req;
		size_t len;
	} cases[] = {
		CASE("garbage request line", "GARBAGE\r\n\r\n"),
		CASE("no version", "GET /\r\nHost: l.local\r\n\r\n"),
		CASE("bad version", "GET / HTTP/9.9x\r\nHost: l.local\r\n\r\n"),
		CASE("space in header name", "GET / HTTP/1.1\r\nHost: l.local\r\nBad Header: x\r\n\r\n"),
		CASE("CL + TE", "POST / HTTP/1.1\r\nHost: l.local\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
			    "0\r\n\r\n"),
		CASE("two differing Content-Length",
		     "POST / HTTP/1.1\r\nHost: l.local\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
		CASE("Content-Length list", "POST / HTTP/1.1\r\nHost: l.local\r\nContent-Length: 3, 4\r\n\r\nabcd"),
		CASE("negative Content-Length", "POST / HTTP/1.1\r\nHost: l.local\r\nContent-Length: -1\r\n\r\n"),
		CASE("TE not ending in chunked", "POST / HTTP/1.1\r\nHost: l.local\r\nTransfer-Encoding: gzip\r\n\r\nab"),
		CASE("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nUser-Agent: t\r\n\r\n"),
		CASE("space before colon", "POST / HTTP/1.1\r\nHost: l.local\r\nTransfer-Encoding : chunked\r\n"
					   "Content-Length: 3\r\n\r\nabc"),
		CASE("invalid Host value", "GET / HTTP/1.1\r\nHost: a b/c\r\n\r\n"),
		CASE("TE chunked twice", "POST / HTTP/1.1\r\nHost: l.local\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
					 "0\r\n\r\n"),
		CASE("two Host headers", "GET / HTTP/1.1\r\nHost: l.local\r\nHost: other\r\n\r\n"),
		CASE("path climbing above root", "GET /../x HTTP/1.1\r\nHost: l.local\r\n\r\n"),
		CASE("path climbing, deeper", "GET /a/../../x HTTP/1.1\r\nHost: l.local\r\n\r\n"),
		CASE("path climbing, encoded", "GET /%2e%2e/x HTTP/1.1\r\nHost: l.local\r\n\r\n"),
		CASE("NUL in header", "GET / HTTP/1.1\r\nHost: l.local\r\nX: a\0b\r\n\r\n"),
		/* Forwarded, the fold's line break ended the head early and the
		 * next line reached the upstream as a request of its own. */
		CASE("header folded over lines (space)",
		     "GET / HTTP/1.1\r\nHost: l.local\r\nX-A: a\r\n b\r\nX-B: c\r\n\r\n"),
		CASE("trailer folded over lines",
		     "POST / HTTP/1.1\r\nHost: l.local\r\nTransfer-Encoding: chunked\r\n\r\n"
		     "1\r\nA\r\n0\r\nX-T: a\r\n b\r\n\r\n"),
		CASE("header folded over lines (tab)",
		     "GET / HTTP/1.1\r\nHost: l.local\r\nX-A: a\r\n\tGET /smuggled HTTP/1.1\r\n\r\n"),
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = raw_status(port, cases[i].req, cases[i].len);
		cr_expect_eq(st, 400, "%s: status %d (0 = closed without a response)", cases[i].what, st);
	}
	/* Paths that look odd but stay under the root are fine. */
	char seen[256];
	struct h_resp r;
	cr_assert_eq(h_get(&r, port, "l.local", "/a/../b"), 0);
	cr_expect_eq(r.status, 200, "/a/../b: %d", r.status);
	snprintf(seen, sizeof(seen), "%s", h_echo_value(&r, "target") ? h_echo_value(&r, "target") : "");
	h_resp_free(&r);
	/* After all that the server still works. */
	cr_assert_eq(h_get(&r, port, "l.local", "/fine"), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
}

Test(limits, connect_refused_502)
{
	int port = start(53, NULL, NULL, NULL, NULL);
	struct h_resp r;
	int64_t t0 = h_now_ms();
	cr_assert_eq(h_get(&r, port, "dead.local", "/x"), 0, "no response for a refused upstream");
	cr_expect_eq(r.status, 502, "connect refused: %d", r.status);
	cr_expect_lt(h_now_ms() - t0, 3000, "502 took %lld ms", (long long)(h_now_ms() - t0));
	h_resp_free(&r);
	/* With a body too (the body must be drained or the connection closed). */
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "POST /x HTTP/1.1\r\nHost: dead.local\r\nContent-Length: 3\r\n\r\nabc"
				      "GET /y HTTP/1.1\r\nHost: l.local\r\n\r\n"),
		     0);
	cr_assert_eq(h_conn_response(&c, &r, false, 5000), 0);
	cr_expect_eq(r.status, 502);
	h_resp_free(&r);
	/* The pipelined GET: either answered, or the connection closed. */
	int e = h_conn_response(&c, &r, false, 5000);
	if (e == 0)
		cr_expect_eq(r.status, 200, "request after a 502: %d (body bytes mistaken for a request?)", r.status);
	else
		cr_expect(e == -EPIPE || e == -ECONNRESET, "after a 502: %d", e);
	h_resp_free(&r);
	h_conn_close(&c);
}

Test(limits, proxy_read_timeout_504)
{
	int port = start(54, "--proxy-read-timeout", "1s", NULL, NULL);
	struct h_resp r;
	int64_t t0 = h_now_ms();
	cr_assert_eq(h_get(&r, port, "l.local", "/_/sleep/4000"), 0, "no response from a slow upstream");
	int64_t dt = h_now_ms() - t0;
	cr_expect_eq(r.status, 504, "slow upstream: %d", r.status);
	cr_expect(dt >= 900 && dt < 3000, "504 after %lld ms, expected about 1000", (long long)dt);
	h_resp_free(&r);
	/* Under the timeout works. */
	cr_assert_eq(h_get(&r, port, "l.local", "/_/sleep/300"), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
	/* A trickling body resets the read timeout (between two reads). */
	t0 = h_now_ms();
	cr_assert_eq(h_get(&r, port, "l.local", "/_/drip/4/500"), 0);
	cr_expect_eq(r.status, 200);
	cr_expect_eq(r.body_len, 4, "drip body %zu bytes", r.body_len);
	h_resp_free(&r);
}

/* A local address where connects hang: a listener with a full accept
 * queue (never accepting) makes the kernel drop further SYNs. Returns the
 * listener; the filler sockets stay open until the test process exits. */
static int blackhole(int port)
{
	int l = h_listen(port, 0);
	cr_assert_geq(l, 0, "listen on %d: %d", port, l);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < 4; i++) {
		int f = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		connect(f, (struct sockaddr *)&sa, sizeof(sa));
	}
	h_sleep_ms(100);
	return l;
}

Test(limits, proxy_connect_timeout_504)
{
	int port = start(55, "--proxy-connect-timeout", "1s", NULL, NULL);
	blackhole(H_PORT(55, 3)); /* the endpoint of dead.local */
	struct h_resp r;
	int64_t t0 = h_now_ms();
	cr_assert_eq(h_get(&r, port, "dead.local", "/"), 0, "no response");
	int64_t dt = h_now_ms() - t0;
	cr_expect_eq(r.status, 504, "connect to a black hole: %d after %lld ms", r.status, (long long)dt);
	cr_expect(dt >= 900 && dt < 3000, "connect timeout after %lld ms, expected about 1000", (long long)dt);
	h_resp_free(&r);
}

Test(limits, client_header_timeout)
{
	int port = start(56, "--client-header-timeout", "1s", NULL, NULL);
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET / HTTP/1.1\r\nHost: l.lo"), 0);
	int64_t t0 = h_now_ms();
	/* Trickle one byte every 300 ms: the timeout covers the whole head. */
	int closed = -1;
	for (int i = 0; i < 20 && closed != 0; i++) {
		h_conn_send(&c, "c", 1, 500);
		closed = h_conn_wait_closed(&c, 300);
	}
	int64_t dt = h_now_ms() - t0;
	cr_expect_eq(closed, 0, "slow header not cut after %lld ms", (long long)dt);
	cr_expect(dt >= 800 && dt < 3000, "closed after %lld ms, expected about 1000", (long long)dt);
	/* If ringress answered before closing, it is a 408. */
	if (c.len)
		cr_expect(!strncmp(c.buf, "HTTP/1.1 408", 12), "slow header got: %.60s", c.buf);
	h_conn_close(&c);
	/* An idle connection that never sent anything is closed as well. */
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	cr_expect_eq(h_conn_wait_closed(&c, 3000), 0, "idle new connection not closed");
	h_conn_close(&c);
}

Test(limits, keep_alive_idle_timeout)
{
	int port = start(57, "--keep-alive", "1s", NULL, NULL);
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET / HTTP/1.1\r\nHost: l.local\r\n\r\n"), 0);
	struct h_resp r;
	cr_assert_eq(h_conn_response(&c, &r, false, 5000), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
	int64_t t0 = h_now_ms();
	cr_expect_eq(h_conn_wait_closed(&c, 4000), 0, "idle keep-alive connection still open after 4 s");
	int64_t dt = h_now_ms() - t0;
	cr_expect(dt >= 800, "idle connection closed after %lld ms, before --keep-alive 1s", (long long)dt);
	cr_expect_eq(c.len, 0, "bytes on an idle close: %.60s", c.buf);
	h_conn_close(&c);
}

Test(limits, upstream_dies_mid_body)
{
	int port = start(58, NULL, NULL, NULL, NULL);
	/* The upstream dies after part of a Content-Length body: the client
	 * must see the connection closed (a truncated response), never a
	 * complete-looking one nor a hang. */
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET /_/drip/1000/2 HTTP/1.1\r\nHost: l.local\r\n\r\n"), 0);
	cr_assert_eq(h_conn_wait_head(&c, 3000), 0, "no response head");
	h_sleep_ms(200);
	cr_assert_eq(h_signal(web_pid, SIGKILL), 0);
	int st;
	cr_assert_eq(h_wait_exit(web_pid, 2000, &st), 0);
	int e = h_conn_wait_closed(&c, 4000);
	cr_expect_eq(e, 0, "client connection not closed after the upstream died mid-body");
	h_conn_close(&c);
}

/* Random heads (line breaks, folds, spaces, colons, control and high bytes
 * between valid lines) never put the upstream connection out of step: each
 * is refused with a 4xx or answered for its own target, and a request sent
 * after it, on a new client connection that gets the pooled upstream
 * connection, is answered for its target. The build before the fold check
 * let "X: a\r\n b" end the forwarded head early: the upstream answered a
 * head without ringress's X-Forwarded-For. */
Test(limits, random_heads_keep_upstreams_in_step, .timeout = 60)
{
	int port = start(59, NULL, NULL, NULL, NULL);
	static const char *const piece[] = {"\r", "\n", "\r\n", " ", "\t", ":", "a", "X-", "0", "\r\n ",
					    "\r\n\t", "\x01", "\x7f", "\xff", ";", ",", "\r\nX: y",
					    "\r\n\r\n", NULL};
	uint64_t seed = 7;
	int answered = 0;
	for (int i = 0; i < 300; i++) {
		char req[512], want[32];
		int n = snprintf(req, sizeof(req), "GET /f/%d HTTP/1.1\r\nHost: l.local\r\nX-A: v", i);
		h_random_pieces(req, &n, sizeof(req) - 64, &seed, piece, 6);
		n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\nConnection: close\r\n\r\n");

		struct h_conn c;
		struct h_resp r;
		cr_assert_eq(h_conn_open(&c, port, 2000), 0);
		(void)h_conn_send(&c, req, (size_t)n, 3000);
		int e = h_conn_response(&c, &r, false, 3000);
		cr_assert_neq(e, -ETIMEDOUT, "head %d: no answer:\n%.*s", i, n, req);
		if (e == 0 && r.status == 200) {
			answered++;
			snprintf(want, sizeof(want), "/f/%d", i);
			const char *t = h_echo_value(&r, "target");
			cr_expect(t && !strcmp(t, want), "head %d answered for %s:\n%.*s", i, t ? t : "-", n, req);
			/* The whole forwarded head reached the upstream: ringress's
			 * own headers come last. */
			const char *xff = h_echo_value(&r, "header.x-forwarded-for");
			cr_expect(xff && !strcmp(xff, "127.0.0.1"),
				  "head %d reached the upstream cut short (X-Forwarded-For %s):\n%.*s", i,
				  xff ? xff : "missing", n, req);
		} else if (e == 0) {
			cr_expect(r.status >= 400 && r.status < 500, "head %d: status %d", i, r.status);
		}
		if (e == 0)
			h_resp_free(&r);
		h_conn_close(&c);

		snprintf(want, sizeof(want), "/check/%d", i);
		cr_assert_eq(h_get(&r, port, "l.local", want), 0, "check %d: no response", i);
		const char *t = h_echo_value(&r, "target");
		cr_expect(r.status == 200 && t && !strcmp(t, want),
			  "after head %d the next request got status %d for %s:\n%.*s", i, r.status,
			  t ? t : "-", n, req);
		h_resp_free(&r);
	}
	cr_expect_gt(answered, 10, "only %d of the random heads were valid", answered);
}

/* ---- out of memory ---- */

enum oom_outcome { OOM_OK, OOM_ERROR_STATUS, OOM_CLOSED };

/* One request of kind k on c; asserts that whatever came is whole and right
 * (a 200 with the expected body, or a 502/503), or that the connection
 * closed; a response that never comes fails the test. */
static enum oom_outcome oom_request(struct h_conn *c, int k, int i)
{
	static char body[3000];
	h_pattern(body, sizeof(body), (uint64_t)i);
	/* Kinds 0, 3, 4 and 5 are GETs; 1 and 2 POST a body to be echoed. */
	static const struct {
		const char *what, *target;
		size_t len; /* of the body, 0: not checked */
	} kind[6] = {
		{"small GET", "/oom/_/bytes/100", 100},
		{"POST with Content-Length", "/oom/_/echo", sizeof(body)},
		{"chunked POST", "/oom/_/echo", sizeof(body)},
		{"chunked response", "/oom/_/chunked/20000", 20000},
		{"response with 40 extra headers", "/oom/_/headers/40", 0},
		{"spliced response", "/oom/_/bytes/200000", 200000},
	};
	const char *what = kind[k].what;
	size_t want_len = kind[k].len;
	int e;
	if (k == 1) {
		e = h_conn_sendf(c, "POST %s HTTP/1.1\r\nHost: l.local\r\nContent-Length: %zu\r\n\r\n",
				 kind[k].target, sizeof(body));
		if (!e)
			e = h_conn_send(c, body, sizeof(body), 3000);
	} else if (k == 2) {
		e = h_conn_sendf(c, "POST %s HTTP/1.1\r\nHost: l.local\r\nTransfer-Encoding: chunked\r\n\r\n"
				    "3e8\r\n%.1000s\r\n7d0\r\n%.2000s\r\n0\r\n\r\n",
				 kind[k].target, body, body + 1000);
	} else {
		e = h_conn_sendf(c, "GET %s HTTP/1.1\r\nHost: l.local\r\n\r\n", kind[k].target);
	}
	struct h_resp r;
	/* A send that failed (ringress closed) may still leave a response. */
	int rr = h_conn_response(c, &r, false, 8000);
	cr_assert_neq(rr, -ETIMEDOUT, "request %d (%s): no response and no close in 8 s (send %d)", i,
		      what, e);
	cr_assert_neq(rr, -EPROTO, "request %d (%s): a malformed response", i, what);
	if (rr < 0)
		return OOM_CLOSED;
	enum oom_outcome out = OOM_OK;
	if (r.status == 200) {
		if (want_len)
			cr_assert_eq(r.body_len, want_len, "request %d (%s): %zu bytes of %zu", i, what,
				     r.body_len, want_len);
		if (k == 1 || k == 2)
			cr_assert(!memcmp(r.body, body, sizeof(body)), "request %d (%s): body changed", i,
				  what);
		if (k == 4)
			cr_assert_eq(h_header_count(&r, "x-fill-39"), 1, "request %d: headers lost", i);
		if (k == 5 || k == 0) {
			const char *crc = h_header(&r, "x-body-crc32");
			char hex[16];
			snprintf(hex, sizeof(hex), "%08x", h_crc32(0, r.body, r.body_len));
			cr_assert(crc && !strcasecmp(crc, hex), "request %d (%s): crc %s, body %s", i,
				  what, crc ? crc : "-", hex);
		}
	} else {
		cr_assert(r.status == 502 || r.status == 503, "request %d (%s): status %d", i, what,
			  r.status);
		out = OOM_ERROR_STATUS;
	}
	h_resp_free(&r);
	return out;
}

/* 30 % of the allocations on the shard thread fail (tests/support/failmalloc.c,
 * LD_PRELOAD) while 300 requests of six kinds go through: each gets its
 * whole, right response, a 502/503, or a closed connection, never a hang
 * or a corrupt response, and every failure is logged. With the failures
 * off, ringress serves as before. */
Test(limits, out_of_memory_gets_errors_not_hangs, .timeout = 120)
{
	cr_assert_eq(h_failmalloc_preload("shard-", 300), 0, "RINGRESS_FAILMALLOC (libfailmalloc.so) not set: run through zig build test");
	int port = start(60, NULL, NULL, NULL, NULL);
	h_failmalloc_spawned();
	struct h_resp r;
	cr_assert_eq(h_get(&r, port, "l.local", "/before"), 0);
	cr_assert_eq(r.status, 200);
	h_resp_free(&r);
	cr_assert_eq(h_failmalloc_on(true), 0);
	int count[3] = {0};
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	for (int i = 0; i < 300; i++) {
		enum oom_outcome o = oom_request(&c, i % 6, i);
		count[o]++;
		if (o != OOM_OK) {
			h_conn_close(&c);
			/* The connect itself may meet a failure (then it closes). */
			cr_assert_eq(h_conn_open(&c, port, 2000), 0);
		}
	}
	h_conn_close(&c);
	cr_assert_eq(h_failmalloc_on(false), 0);
	cr_log_info("out of memory: %d whole responses, %d 502/503, %d closed", count[0], count[1],
		    count[2]);
	cr_expect_gt(count[1] + count[2], 10, "few failures: did the library load? (%d, %d)", count[1],
		     count[2]);
	cr_expect_gt(count[0], 10, "nothing went through (%d)", count[0]);
	cr_expect(strstr(h_log_tail("ringress", 1 << 20), "out of memory"),
		  "failures without a log line");
	/* Failures off: served as before, every kind. */
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	for (int i = 0; i < 12; i++)
		cr_assert_eq(oom_request(&c, i % 6, 1000 + i), OOM_OK, "request %d after the failures", i);
	h_conn_close(&c);
}
