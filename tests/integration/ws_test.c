/* ws_test.c - WebSocket through ringress (issue 4, "Bodies and tunnels"):
 * upgrade + 101 + Sec-WebSocket-Accept, masked frames of many sizes echoed by
 * the project's WebSocket backend (tests/support/ws, ringress-ws), wss://
 * over TLS, a tunnel that survives manifest changes, and the idle bound
 * --proxy-read-timeout. Test indices 65-69. */
#include "harness.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

TestSuite(ws, .init = h_setup, .fini = h_teardown, .timeout = 60);

/* RFC 6455 section 1.3's example. */
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/* A second pair, computed with Python's hashlib + base64. */
#define KEY2 "x3JJHMbDL1EzLkh9GBhXDw=="
#define ACCEPT2 "HSmrc0sMlYUkAGmm5OPpG2HaGWk="

static const char *ws_bin(void)
{
	static char buf[PATH_MAX];
	const char *v = getenv("RINGRESS_WS");
	if (v && *v)
		return v;
	const char *root = getenv("RINGRESS_ROOT");
	snprintf(buf, sizeof(buf), "%s/zig-out/bin/ringress-ws", root && *root ? root : ".");
	return buf;
}

static pid_t start_ws_backend(int port)
{
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	char *argv[] = {(char *)ws_bin(), "--listen", listen, NULL};
	pid_t p = h_spawn("ws", argv);
	cr_assert_gt(p, 0, "ringress-ws did not start");
	cr_assert(h_wait_port(port, 3000), "ringress-ws not listening; log:\n%s", h_log_tail("ws", 2000));
	return p;
}

static char *yaml_ws_ingress(const char *name, const char *host, const char *svc, const char *extra_path)
{
	char *s = NULL;
	char extra[512] = "";
	if (extra_path)
		snprintf(extra, sizeof(extra),
			 "          - path: %s\n"
			 "            pathType: Prefix\n"
			 "            backend:\n"
			 "              service:\n"
			 "                name: %s\n"
			 "                port:\n"
			 "                  number: 80\n",
			 extra_path, svc);
	if (asprintf(&s,
		     "apiVersion: networking.k8s.io/v1\n"
		     "kind: Ingress\n"
		     "metadata:\n"
		     "  name: %s\n"
		     "  namespace: demo\n"
		     "spec:\n"
		     "  ingressClassName: ringress\n"
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
		     "                  number: 80\n"
		     "%s",
		     name, host, svc, extra) < 0)
		abort();
	return s;
}

/* ringress-ws on port 1 behind w.local, ringress on port 0 / admin 9. */
static int start(int idx, const char *a1, const char *a2)
{
	start_ws_backend(H_PORT(idx, 1));
	cr_assert_eq(h_write("m/00-class.yaml", "%s", h_yaml_class()), 0);
	cr_assert_eq(h_write("m/10-wsb.yaml", "%s", h_yaml_backend("demo", "wsb", H_PORT(idx, 1), true)), 0);
	cr_assert_eq(h_write("m/20-ws.yaml", "%s", yaml_ws_ingress("ws", "w.local", "wsb", NULL)), 0);
	pid_t p = h_ringress_ready(H_PORT(idx, 0), H_PORT(idx, 9), "--shards", "2", a1, a2, NULL);
	cr_assert_gt(p, 0, "ringress not ready (%d); log:\n%s", p, h_log_tail("ringress", 2000));
	return H_PORT(idx, 0);
}

/* ---- WebSocket client ---- */

/* Reads exactly len bytes: first what c->buf holds, then the socket. */
static int ws_read(struct h_conn *c, void *dst, size_t len, int timeout_ms)
{
	char *p = dst;
	int64_t deadline = h_now_ms() + timeout_ms;
	if (c->len) {
		size_t k = c->len < len ? c->len : len;
		memcpy(p, c->buf, k);
		memmove(c->buf, c->buf + k, c->len - k);
		c->len -= k;
		p += k;
		len -= k;
	}
	while (len) {
		ssize_t n = recv(c->fd, p, len, 0);
		if (n > 0) {
			p += n;
			len -= n;
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		int left = (int)(deadline - h_now_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pf = {.fd = c->fd, .events = POLLIN};
		poll(&pf, 1, left);
	}
	return 0;
}

/* Sends one masked client frame (b0 = FIN/opcode byte). */
static int ws_send(struct h_conn *c, unsigned char b0, const void *payload, size_t len)
{
	static uint32_t seed = 0x9e3779b9;
	size_t hl = 2;
	unsigned char *f = malloc(len + 14);
	if (!f)
		return -ENOMEM;
	f[0] = b0;
	if (len < 126) {
		f[1] = 0x80 | (unsigned char)len;
	} else if (len < 65536) {
		f[1] = 0x80 | 126;
		f[2] = (unsigned char)(len >> 8);
		f[3] = (unsigned char)len;
		hl = 4;
	} else {
		f[1] = 0x80 | 127;
		for (int i = 0; i < 8; i++)
			f[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
		hl = 10;
	}
	seed = seed * 1103515245u + 12345u;
	unsigned char mask[4] = {(unsigned char)(seed >> 24), (unsigned char)(seed >> 16), (unsigned char)(seed >> 8),
				 (unsigned char)seed | 1};
	memcpy(f + hl, mask, 4);
	const unsigned char *p = payload;
	for (size_t i = 0; i < len; i++)
		f[hl + 4 + i] = p[i] ^ mask[i & 3];
	int e = h_conn_send(c, f, hl + 4 + len, 20000);
	free(f);
	return e;
}

struct ws_frame {
	unsigned char b0;
	bool masked;
	size_t len;
	unsigned char *data;
};

/* Reads one server frame (payload malloc'd into f->data). */
static int ws_recv(struct h_conn *c, struct ws_frame *f, int timeout_ms)
{
	unsigned char h[2], ext[8];
	memset(f, 0, sizeof(*f));
	int e = ws_read(c, h, 2, timeout_ms);
	if (e)
		return e;
	f->b0 = h[0];
	f->masked = h[1] & 0x80;
	uint64_t len = h[1] & 0x7f;
	if (len == 126) {
		if ((e = ws_read(c, ext, 2, timeout_ms)))
			return e;
		len = (uint64_t)ext[0] << 8 | ext[1];
	} else if (len == 127) {
		if ((e = ws_read(c, ext, 8, timeout_ms)))
			return e;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | ext[i];
	}
	if (len > 64u * 1024 * 1024)
		return -EPROTO;
	f->len = len;
	f->data = malloc(len + 1);
	if (!f->data)
		return -ENOMEM;
	return len ? ws_read(c, f->data, len, timeout_ms) : 0;
}

/* Opens a connection and upgrades it; asserts 101 and the accept key. */
static void ws_open(struct h_conn *c, int port, const char *path, const char *key, const char *accept)
{
	cr_assert_eq(h_conn_open(c, port, 2000), 0, "connect to ringress failed");
	cr_assert_eq(h_conn_sendf(c,
				  "GET %s HTTP/1.1\r\nHost: w.local\r\nUpgrade: websocket\r\n"
				  "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
				  "Sec-WebSocket-Version: 13\r\nOrigin: http://w.local\r\n\r\n",
				  path, key),
		     0);
	struct h_resp r;
	int e = h_conn_response(c, &r, false, 5000);
	cr_assert_eq(e, 0, "no upgrade response (%d): %.300s\nringress log:\n%s", e, c->buf ? c->buf : "",
		     h_log_tail("ringress", 1500));
	cr_assert_eq(r.status, 101, "upgrade answered %d:\n%s", r.status, r.head);
	const char *up = h_header(&r, "Upgrade");
	cr_expect(up && !strcasecmp(up, "websocket"), "Upgrade header: %s", up ? up : "(none)");
	const char *conn = h_header(&r, "Connection");
	cr_expect(conn && strcasestr(conn, "upgrade"), "Connection header: %s", conn ? conn : "(none)");
	const char *acc = h_header(&r, "Sec-WebSocket-Accept");
	cr_assert(acc && !strcmp(acc, accept), "Sec-WebSocket-Accept %s, want %s", acc ? acc : "(none)", accept);
	h_resp_free(&r);
}

static void fill_payload(unsigned char *p, size_t len, unsigned salt)
{
	uint32_t x = 2463534242u ^ salt;
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

/* Sends one data frame of len bytes and checks the echo. */
static void echo_once(struct h_conn *c, unsigned char b0, size_t len, unsigned salt)
{
	unsigned char *p = malloc(len + 1);
	cr_assert_not_null(p);
	fill_payload(p, len, salt);
	int e = ws_send(c, b0, p, len);
	cr_assert_eq(e, 0, "sending a %zu-byte frame failed (%d)", len, e);
	struct ws_frame f;
	e = ws_recv(c, &f, 20000);
	cr_assert_eq(e, 0, "no echo of a %zu-byte frame (%d); ringress log:\n%s", len, e,
		     h_log_tail("ringress", 1500));
	cr_expect_not(f.masked, "server frame is masked");
	cr_expect_eq(f.b0, b0, "echo frame byte 0 is 0x%02x, want 0x%02x", f.b0, b0);
	cr_assert_eq(f.len, len, "echo of a %zu-byte frame has %zu bytes", len, f.len);
	cr_assert(len == 0 || !memcmp(f.data, p, len), "echo of a %zu-byte frame differs", len);
	free(f.data);
	free(p);
}

/* ---- tests ---- */

Test(ws, echo_through_ringress)
{
	int port = start(66, NULL, NULL);

	/* A plain request to the same backend still works (no upgrade). */
	struct h_resp r;
	cr_assert_eq(h_get(&r, port, "w.local", "/plain"), 0);
	cr_expect_eq(r.status, 200, "plain GET to the WebSocket backend: %d", r.status);
	cr_expect_str_eq(r.body, "ringress-ws\n");
	h_resp_free(&r);

	struct h_conn c;
	ws_open(&c, port, "/chat", RFC_KEY, RFC_ACCEPT);
	static const size_t sizes[] = {0,     1,     2,     125,   126,   127,         1000,
				       65535, 65536, 65537, 70000, 300000, 1024 * 1024, 3 * 1024 * 1024 + 7};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		echo_once(&c, 0x82, sizes[i], (unsigned)i); /* binary */
		echo_once(&c, 0x81, sizes[i] < 4096 ? sizes[i] : 4096, (unsigned)i + 100); /* text-ish */
	}
	/* A fragmented message comes back frame by frame. */
	echo_once(&c, 0x01, 10, 7);      /* text, FIN=0 */
	echo_once(&c, 0x00, 70000, 8);   /* continuation, FIN=0 */
	echo_once(&c, 0x80, 5, 9);       /* continuation, FIN=1 */

	/* Several frames in one write come back in order. */
	for (int i = 0; i < 20; i++) {
		unsigned char p[200];
		fill_payload(p, sizeof(p), 1000 + i);
		cr_assert_eq(ws_send(&c, 0x82, p, 100 + i), 0);
	}
	for (int i = 0; i < 20; i++) {
		unsigned char p[200];
		fill_payload(p, sizeof(p), 1000 + i);
		struct ws_frame f;
		cr_assert_eq(ws_recv(&c, &f, 10000), 0, "pipelined frame %d missing", i);
		cr_assert_eq(f.len, (size_t)(100 + i));
		cr_assert(!memcmp(f.data, p, f.len), "pipelined frame %d differs", i);
		free(f.data);
	}

	/* Ping -> pong with the same payload. */
	cr_assert_eq(ws_send(&c, 0x89, "ping!", 5), 0);
	struct ws_frame f;
	cr_assert_eq(ws_recv(&c, &f, 5000), 0, "no pong");
	cr_expect_eq(f.b0, 0x8A, "answer to ping: 0x%02x", f.b0);
	cr_expect(f.len == 5 && !memcmp(f.data, "ping!", 5), "pong payload");
	free(f.data);

	/* Close -> close, then the tunnel ends. */
	unsigned char code[2] = {0x03, 0xe8};
	cr_assert_eq(ws_send(&c, 0x88, code, 2), 0);
	cr_assert_eq(ws_recv(&c, &f, 5000), 0, "no close answer");
	cr_expect_eq(f.b0, 0x88);
	cr_expect(f.len == 2 && f.data[0] == 0x03 && f.data[1] == 0xe8, "close payload");
	free(f.data);
	cr_expect_eq(h_conn_wait_closed(&c, 5000), 0, "ringress keeps the client side open after the backend closed");
	h_conn_close(&c);

	/* A second key (Accept computed independently) on a new tunnel. */
	ws_open(&c, port, "/chat2", KEY2, ACCEPT2);
	echo_once(&c, 0x81, 42, 1);
	h_conn_close(&c);

	/* ringress is still fine after the tunnels. */
	cr_assert_eq(h_get(&r, port, "w.local", "/after"), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
}

Test(ws, tunnel_survives_manifest_change)
{
	int port = start(67, NULL, NULL);
	cr_assert_gt(h_echo("other", H_PORT(67, 2)), 0);

	struct h_conn c;
	ws_open(&c, port, "/live", RFC_KEY, RFC_ACCEPT);
	echo_once(&c, 0x82, 5000, 1);

	/* New Ingress + Service, and the tunnel's own Ingress rewritten. */
	cr_assert_eq(h_write("m/30-other-svc.yaml", "%s", h_yaml_backend("demo", "other", H_PORT(67, 2), true)), 0);
	cr_assert_eq(h_write("m/31-other-ing.yaml", "%s",
			     h_yaml_ingress("demo", "other", "o.local", "/", "Prefix", "other")),
		     0);
	cr_assert_eq(h_write_atomic("m/20-ws.yaml", "%s", yaml_ws_ingress("ws", "w.local", "wsb", "/extra")), 0);

	/* Wait until the new configuration serves o.local. */
	bool applied = false;
	for (int64_t end = h_now_ms() + 10000; h_now_ms() < end && !applied;) {
		struct h_resp r;
		if (h_get(&r, port, "o.local", "/x") == 0 && r.status == 200) {
			const char *svc = h_echo_value(&r, "service");
			applied = svc && !strcmp(svc, "other");
		}
		h_resp_free(&r);
		if (!applied)
			h_sleep_ms(100);
	}
	cr_assert(applied, "the manifest change was not applied in 10 s; log:\n%s", h_log_tail("ringress", 2000));

	/* The old tunnel still echoes, in both small and large frames. */
	echo_once(&c, 0x82, 100, 2);
	echo_once(&c, 0x82, 200000, 3);

	/* Second change (removal of the other Ingress) while the tunnel lives. */
	cr_assert_eq(h_remove("m/31-other-ing.yaml"), 0);
	h_sleep_ms(1200);
	echo_once(&c, 0x81, 10, 4);
	h_conn_close(&c);

	/* And a new tunnel through the new configuration. */
	ws_open(&c, port, "/extra/ws", KEY2, ACCEPT2);
	echo_once(&c, 0x82, 70000, 5);
	h_conn_close(&c);
}

Test(ws, idle_tunnel_closed_after_read_timeout)
{
	int port = start(68, "--proxy-read-timeout", "1s");

	struct h_conn c;
	ws_open(&c, port, "/idle", RFC_KEY, RFC_ACCEPT);
	/* Active for 3 s (three times the timeout), one echo every 250 ms:
	 * the bound is on idle time, not on the tunnel's age. */
	int64_t start_ms = h_now_ms();
	int n = 0;
	while (h_now_ms() - start_ms < 3000) {
		echo_once(&c, 0x81, 16, (unsigned)n++);
		h_sleep_ms(250);
	}
	/* Then idle: ringress closes it (generous deadline, well above 1 s). */
	int64_t idle_from = h_now_ms();
	int e = h_conn_wait_closed(&c, 10000);
	cr_assert_eq(e, 0, "idle tunnel still open %lld ms after the last frame (--proxy-read-timeout 1s)",
		     (long long)(h_now_ms() - idle_from));
	cr_log_info("idle tunnel closed %lld ms after the last frame", (long long)(h_now_ms() - idle_from));
	h_conn_close(&c);

	/* The proxy keeps working after that. */
	struct h_resp r;
	cr_assert_eq(h_get(&r, port, "w.local", "/after"), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
}

Test(ws, refused_upgrade_is_plain_response)
{
	/* A backend that does not switch protocols: its answer is a normal
	 * response and the connection stays HTTP. */
	int idx = 69;
	cr_assert_gt(h_echo("plain", H_PORT(idx, 1)), 0);
	cr_assert_eq(h_write("m/00-class.yaml", "%s", h_yaml_class()), 0);
	cr_assert_eq(h_write("m/10-p.yaml", "%s", h_yaml_backend("demo", "plain", H_PORT(idx, 1), true)), 0);
	cr_assert_eq(h_write("m/20-p.yaml", "%s", yaml_ws_ingress("p", "w.local", "plain", NULL)), 0);
	pid_t p = h_ringress_ready(H_PORT(idx, 0), H_PORT(idx, 9), "--shards", "1", NULL);
	cr_assert_gt(p, 0, "ringress not ready; log:\n%s", h_log_tail("ringress", 2000));

	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, H_PORT(idx, 0), 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET /ws HTTP/1.1\r\nHost: w.local\r\nUpgrade: websocket\r\n"
				      "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\n"
				      "Sec-WebSocket-Version: 13\r\n\r\n"),
		     0);
	struct h_resp r;
	cr_assert_eq(h_conn_response(&c, &r, false, 5000), 0);
	cr_expect_eq(r.status, 200, "echo backend answered %d", r.status);
	h_resp_free(&r);
	/* Still HTTP on this connection. */
	cr_assert_eq(h_conn_sendf(&c, "GET /again HTTP/1.1\r\nHost: w.local\r\n\r\n"), 0);
	int e = h_conn_response(&c, &r, false, 5000);
	cr_expect(e == 0 || e == -EPIPE, "second request: %d", e);
	if (e == 0)
		cr_expect_eq(r.status, 200);
	h_resp_free(&r);
	h_conn_close(&c);
}

/* wss://: the upgrade over TLS (the default certificate), a masked text frame
 * echoed through the tunnel, then a close frame that ends the connection.
 * openssl s_client is the client; it sends the frames once the 101 had time
 * to arrive (a client waits for the handshake's answer). */
Test(ws, wss_echo_over_tls)
{
	char hp[16];
	snprintf(hp, sizeof(hp), "%d", H_PORT(65, 2));
	start(65, "--https-port", hp);

	/* The request, then (in a second file) a masked "hello over wss" frame
	 * and a masked close frame with code 1000. */
	char req[PATH_MAX], frames[PATH_MAX];
	snprintf(req, sizeof(req), "%s/wss-req", h_dir());
	snprintf(frames, sizeof(frames), "%s/wss-frames", h_dir());
	FILE *f = fopen(req, "w");
	cr_assert_not_null(f);
	fprintf(f, "GET /chat HTTP/1.1\r\nHost: w.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		   "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n");
	fclose(f);
	static const char payload[] = "hello over wss";
	const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
	unsigned char fr[64];
	size_t n = 0, plen = sizeof(payload) - 1;
	fr[n++] = 0x81;
	fr[n++] = 0x80 | (unsigned char)plen;
	memcpy(fr + n, mask, 4);
	n += 4;
	for (size_t i = 0; i < plen; i++)
		fr[n++] = (unsigned char)payload[i] ^ mask[i % 4];
	const unsigned char close_code[2] = {0x03, 0xe8};
	fr[n++] = 0x88;
	fr[n++] = 0x80 | 2;
	memcpy(fr + n, mask, 4);
	n += 4;
	for (size_t i = 0; i < 2; i++)
		fr[n++] = close_code[i] ^ mask[i];
	f = fopen(frames, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(fr, 1, n, f), n);
	fclose(f);

	char cmd[2 * PATH_MAX + 256];
	snprintf(cmd, sizeof(cmd),
		 "(cat %s; sleep 1; cat %s) | timeout 10 openssl s_client -quiet -ign_eof "
		 "-connect 127.0.0.1:%d -servername w.local 2>/dev/null",
		 req, frames, H_PORT(65, 2));
	int64_t t0 = h_now_ms();
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	static char out[8192];
	size_t got = fread(out, 1, sizeof(out) - 1, p);
	out[got] = 0;
	int st = pclose(p);
	int64_t took = h_now_ms() - t0;

	cr_assert_not_null(strstr(out, "HTTP/1.1 101"), "no 101 over TLS: %s\nlog:\n%s", out,
			   h_log_tail("ringress", 2000));
	cr_expect_not_null(strstr(out, "Sec-WebSocket-Accept: " RFC_ACCEPT));
	const char *body = strstr(out, "\r\n\r\n");
	cr_assert_not_null(body);
	body += 4;
	size_t blen = got - (size_t)(body - out);
	/* The echo: an unmasked text frame with the payload, then the close. */
	unsigned char want[2 + sizeof(payload) - 1];
	want[0] = 0x81;
	want[1] = (unsigned char)plen;
	memcpy(want + 2, payload, plen);
	cr_assert_geq(blen, sizeof(want) + 4, "short tunnel output (%zu bytes)", blen);
	cr_expect_eq(memcmp(body, want, sizeof(want)), 0, "echoed frame differs");
	const unsigned char want_close[4] = {0x88, 0x02, 0x03, 0xe8};
	cr_expect_eq(memcmp(body + sizeof(want), want_close, 4), 0, "no close frame echoed");
	/* The backend's close ended the tunnel and the TLS connection: s_client
	 * exited by itself, not by timeout(1). */
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 124, "s_client still connected after the close");
	cr_expect_lt(took, 8000);
}
