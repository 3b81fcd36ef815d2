/* stream_test.c - 100 MiB bodies stream through ringress in both directions
 * with bounded memory: ringress's RSS is sampled while the bytes flow and
 * must stay under 64 MiB. Test indices 70-79. */
#include "harness.h"

#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

TestSuite(stream, .init = h_setup, .fini = h_teardown, .timeout = 90);

#define BIG (100ull * 1024 * 1024)
#define RSS_LIMIT_KB (64 * 1024)

static pid_t rpid;

static int start(int idx)
{
	cr_assert_gt(h_echo("web", H_PORT(idx, 1)), 0, "echo did not start");
	cr_assert_eq(h_write("m/00-class.yaml", "%s", h_yaml_class()), 0);
	cr_assert_eq(h_write("m/10-web.yaml", "%s", h_yaml_backend("demo", "web", H_PORT(idx, 1), true)), 0);
	cr_assert_eq(h_write("m/20-ing.yaml", "%s", h_yaml_ingress("demo", "s", "s.local", "/", "Prefix", "web")),
		     0);
	rpid = h_ringress_ready(H_PORT(idx, 0), H_PORT(idx, 9), "--shards", "1", "--proxy-body-size", "0",
				"--log-level", "info", NULL);
	cr_assert_gt(rpid, 0, "ringress not ready (%d); log:\n%s", rpid, h_log_tail("ringress", 2000));
	return H_PORT(idx, 0);
}

struct flow {
	uint64_t sent, received;  /* body bytes */
	uint32_t crc_sent, crc_received;
	long rss_max_kb, rss_start_kb;
	int samples;
};

static void sample(struct flow *f)
{
	long kb = h_rss_kb(rpid);
	if (kb > f->rss_max_kb)
		f->rss_max_kb = kb;
	f->samples++;
}

/* Full-duplex pump: sends total body bytes (pattern with a per-offset twist
 * so that it differs from the echo's own pattern) after head, and hands
 * every received byte to sink. Stops when sink returns true or on error /
 * deadline. Returns 0 or -errno. */
static int pump(struct h_conn *c, const char *head, uint64_t total, struct flow *f,
		bool (*sink)(struct h_conn *c, struct flow *f), int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	int e = h_conn_send(c, head, strlen(head), 3000);
	if (e)
		return e;
	char *blk = malloc(65536);
	size_t blk_len = 0, blk_off = 0;
	uint64_t next_sample = 0;
	for (;;) {
		if (sink(c, f))
			break;
		if (h_now_ms() > deadline) {
			free(blk);
			return -ETIMEDOUT;
		}
		if (f->sent + f->received >= next_sample) {
			sample(f);
			next_sample += 2 * 1024 * 1024;
		}
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		if (f->sent < total)
			p.events |= POLLOUT;
		if (poll(&p, 1, 200) <= 0)
			continue;
		if (p.revents & POLLOUT && f->sent < total) {
			if (blk_off == blk_len) {
				blk_len = total - f->sent > 65536 ? 65536 : total - f->sent;
				h_pattern(blk, blk_len, f->sent);
				blk[0] ^= (char)(f->sent >> 16); /* vary blocks */
				f->crc_sent = h_crc32(f->crc_sent, blk, blk_len);
				blk_off = 0;
			}
			ssize_t n = send(c->fd, blk + blk_off, blk_len - blk_off, MSG_NOSIGNAL);
			if (n > 0) {
				blk_off += n;
				f->sent += n;
			} else if (n < 0 && errno != EAGAIN) {
				free(blk);
				return -errno;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			if (c->cap - c->len < 65536) {
				size_t cap = c->cap ? c->cap * 2 : 262144;
				c->buf = realloc(c->buf, cap);
				c->cap = cap;
			}
			ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
			if (n > 0) {
				c->len += n;
				c->buf[c->len] = 0;
			} else if (n == 0) {
				c->eof = true;
				if (sink(c, f))
					break;
				free(blk);
				return -EPIPE;
			} else if (errno != EAGAIN) {
				free(blk);
				return -errno;
			}
		}
	}
	free(blk);
	return 0;
}

/* Sink for a small response: done when a whole head + Content-Length body
 * is buffered. */
static bool small_response_done(struct h_conn *c, struct flow *f)
{
	(void)f;
	char *he = c->buf ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
	if (!he)
		return false;
	const char *cl = strcasestr(c->buf, "\r\nContent-Length:");
	if (!cl || cl > he)
		return c->eof;
	size_t n = strtoul(cl + 17, NULL, 10);
	return (size_t)(c->buf + c->len - (he + 4)) >= n;
}

Test(stream, upload_100mib_counted)
{
	int port = start(70);
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	struct flow f = {0};
	f.rss_start_kb = h_rss_kb(rpid);
	char head[256];
	snprintf(head, sizeof(head), "POST /upload HTTP/1.1\r\nHost: s.local\r\nContent-Length: %llu\r\n\r\n",
		 (unsigned long long)BIG);
	int e = pump(&c, head, BIG, &f, small_response_done, 60000);
	cr_assert_eq(e, 0, "upload failed (%d) after %llu bytes; received: %.200s", e, (unsigned long long)f.sent,
		     c.buf ? c.buf : "");
	struct h_resp r;
	cr_assert_eq(h_conn_response(&c, &r, false, 5000), 0);
	cr_expect_eq(r.status, 200);
	char want_crc[16], want_len[32];
	snprintf(want_crc, sizeof(want_crc), "%08x", f.crc_sent);
	snprintf(want_len, sizeof(want_len), "%llu", (unsigned long long)BIG);
	const char *bb = h_echo_value(&r, "body-bytes"), *bc = h_echo_value(&r, "body-crc32");
	cr_expect(bb && !strcmp(bb, want_len), "backend got %s bytes, sent %s", bb ? bb : "-", want_len);
	cr_expect(bc && !strcmp(bc, want_crc), "backend crc %s, sent %s", bc ? bc : "-", want_crc);
	cr_expect_gt(f.samples, 10);
	cr_expect_lt(f.rss_max_kb, RSS_LIMIT_KB, "ringress RSS reached %ld KiB (start %ld KiB) during a 100 MiB upload",
		     f.rss_max_kb, f.rss_start_kb);
	cr_log_info("upload: RSS start %ld KiB, max %ld KiB over %d samples", f.rss_start_kb, f.rss_max_kb, f.samples);
	h_resp_free(&r);
	h_conn_close(&c);
}

Test(stream, upload_100mib_chunked)
{
	int port = start(71);
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "POST /upchunk HTTP/1.1\r\nHost: s.local\r\nTransfer-Encoding: chunked\r\n\r\n"),
		     0);
	char *blk = malloc(65536 + 32);
	uint32_t crc = 0;
	long rss_max = 0;
	int64_t deadline = h_now_ms() + 60000;
	for (uint64_t off = 0; off < BIG && h_now_ms() < deadline; off += 60000) {
		size_t k = BIG - off > 60000 ? 60000 : BIG - off;
		int l = sprintf(blk, "%zx\r\n", k);
		h_pattern(blk + l, k, off);
		crc = h_crc32(crc, blk + l, k);
		memcpy(blk + l + k, "\r\n", 2);
		int e = h_conn_send(&c, blk, l + k + 2, 10000);
		cr_assert_eq(e, 0, "send failed at %llu (%d)", (unsigned long long)off, e);
		if (off % (4 * 1024 * 1024) < 60000) {
			long kb = h_rss_kb(rpid);
			if (kb > rss_max)
				rss_max = kb;
		}
	}
	cr_assert_eq(h_conn_send(&c, "0\r\n\r\n", 5, 5000), 0);
	struct h_resp r;
	cr_assert_eq(h_conn_response(&c, &r, false, 10000), 0);
	cr_expect_eq(r.status, 200);
	char want_crc[16];
	snprintf(want_crc, sizeof(want_crc), "%08x", crc);
	const char *bb = h_echo_value(&r, "body-bytes"), *bc = h_echo_value(&r, "body-crc32");
	cr_expect(bb && strtoull(bb, NULL, 10) == BIG, "backend got %s bytes of a chunked 100 MiB", bb ? bb : "-");
	cr_expect(bc && !strcmp(bc, want_crc), "backend crc %s, sent %s", bc ? bc : "-", want_crc);
	cr_expect_lt(rss_max, RSS_LIMIT_KB, "ringress RSS reached %ld KiB during a chunked upload", rss_max);
	h_resp_free(&r);
	free(blk);
	h_conn_close(&c);
}

Test(stream, download_100mib_slow_reader)
{
	int port = start(72);
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET /_/bytes/%llu HTTP/1.1\r\nHost: s.local\r\n\r\n", (unsigned long long)BIG), 0);
	cr_assert_eq(h_conn_wait_head(&c, 5000), 0, "no response head");
	char *he = memmem(c.buf, c.len, "\r\n\r\n", 4);
	size_t head_len = he - c.buf + 4;
	cr_assert(strstr(c.buf, "200 OK") && strcasestr(c.buf, "Content-Length: 104857600"), "head: %.300s", c.buf);
	/* Stop reading for 1.5 s: a proxy without back-pressure would now
	 * buffer the whole body. */
	long rss_max = 0;
	for (int i = 0; i < 15; i++) {
		h_sleep_ms(100);
		long kb = h_rss_kb(rpid);
		if (kb > rss_max)
			rss_max = kb;
	}
	uint64_t got = c.len - head_len;
	uint32_t crc = h_crc32(0, c.buf + head_len, got);
	char *buf = malloc(262144);
	int64_t deadline = h_now_ms() + 60000;
	uint64_t next = 0;
	while (got < BIG && h_now_ms() < deadline) {
		struct pollfd p = {.fd = c.fd, .events = POLLIN};
		if (poll(&p, 1, 1000) <= 0)
			continue;
		ssize_t n = recv(c.fd, buf, 262144, 0);
		if (n <= 0 && errno != EAGAIN)
			break;
		if (n <= 0)
			continue;
		crc = h_crc32(crc, buf, n);
		got += n;
		if (got >= next) {
			long kb = h_rss_kb(rpid);
			if (kb > rss_max)
				rss_max = kb;
			next += 4 * 1024 * 1024;
		}
	}
	/* The expected CRC is the echo's X-Body-Crc32 header. */
	char hdr[4096];
	snprintf(hdr, sizeof(hdr), "%.*s", (int)head_len, c.buf);
	const char *x = strcasestr(hdr, "X-Body-Crc32:");
	cr_expect_eq(got, BIG, "downloaded %llu of %llu bytes", (unsigned long long)got, (unsigned long long)BIG);
	char want[16];
	snprintf(want, sizeof(want), "%08x", crc);
	cr_expect(x && !strncmp(x + 14, want, 8), "download crc %s, header says %.8s", want, x ? x + 14 : "-");
	cr_expect_lt(rss_max, RSS_LIMIT_KB, "ringress RSS reached %ld KiB during a 100 MiB download", rss_max);
	free(buf);
	h_conn_close(&c);
}

/* Sink for /_/echo: counts and checksums the body as it streams back; done
 * when BIG bytes came back. The head is skipped once complete. */
static bool echo_sink(struct h_conn *c, struct flow *f)
{
	static bool head_done;
	if (f->received == 0 && !head_done) {
		char *he = c->buf ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
		if (!he)
			return c->eof;
		size_t hl = he - c->buf + 4;
		if (strncmp(c->buf, "HTTP/1.1 200", 12))
			return true; /* error response: stop, the test reports it */
		head_done = true;
		memmove(c->buf, c->buf + hl, c->len - hl);
		c->len -= hl;
	}
	if (c->len) {
		f->crc_received = h_crc32(f->crc_received, c->buf, c->len);
		f->received += c->len;
		c->len = 0;
	}
	return f->received >= BIG || c->eof;
}

Test(stream, echo_100mib_full_duplex)
{
	int port = start(73);
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, port, 2000), 0);
	struct flow f = {0};
	f.rss_start_kb = h_rss_kb(rpid);
	char head[256];
	snprintf(head, sizeof(head), "POST /_/echo HTTP/1.1\r\nHost: s.local\r\nContent-Length: %llu\r\n\r\n",
		 (unsigned long long)BIG);
	int e = pump(&c, head, BIG, &f, echo_sink, 60000);
	cr_assert_eq(e, 0, "echo stream failed (%d): sent %llu, received %llu", e, (unsigned long long)f.sent,
		     (unsigned long long)f.received);
	cr_expect_eq(f.received, BIG, "received %llu of %llu", (unsigned long long)f.received, (unsigned long long)BIG);
	cr_expect_eq(f.crc_received, f.crc_sent, "echoed bytes differ (crc %08x vs %08x)", f.crc_received, f.crc_sent);
	cr_expect_lt(f.rss_max_kb, RSS_LIMIT_KB, "ringress RSS reached %ld KiB during a 100 MiB echo", f.rss_max_kb);
	h_conn_close(&c);
}
