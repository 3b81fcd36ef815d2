/* http1_test.c - head collection, validation and header rewriting. */
#include "core/http1.h"
#include "core/blkcache.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parsed {
	llhttp_t p;
	llhttp_settings_t s;
	struct http1_head h;
	struct http1_info info;
	llhttp_errno_t err;
};

/* Parses a head the way the proxy does: bytes appended to the head buffer
 * first, then fed to llhttp, which pauses at the end of the head. */
static void parse(struct parsed *ps, llhttp_type_t type, const char *msg, uint32_t limit)
{
	memset(ps, 0, sizeof(*ps));
	http1_settings_init(&ps->s);
	llhttp_init(&ps->p, type, &ps->s);
	ps->p.data = &ps->h;
	ps->h.limit = limit;
	size_t n = strlen(msg);
	int r = http1_head_append(&ps->h, msg, n);
	if (r < 0) {
		ps->err = HPE_USER;
		return;
	}
	ps->err = llhttp_execute(&ps->p, ps->h.buf, n);
	if (ps->err == HPE_PAUSED)
		http1_head_scan(&ps->h, &ps->p, &ps->info);
}

static void done(struct parsed *ps)
{
	http1_head_free(&ps->h);
}

static const struct http1_fwd fwd = {
	.client_ip = "192.0.2.7", .proto = "http", .port = 80, .request_id = "generated-id"};

/* Parses request head msg into ps and writes the head ringress forwards
 * for it (with fwd) into out, NUL-terminated. */
static void forward_request(struct parsed *ps, const char *msg, char *out, size_t cap)
{
	parse(ps, HTTP_REQUEST, msg, 32768);
	cr_assert_eq(ps->err, HPE_PAUSED, "%s", msg);
	int n = http1_rewrite_request(&ps->h, &ps->info, &ps->p, &fwd, out, cap - 1);
	cr_assert_gt(n, 0, "%s", msg);
	out[n] = 0;
}

Test(http1, request_head_rewritten)
{
	struct parsed ps;
	char out[4096];

	parse(&ps, HTTP_REQUEST,
	      "GET /a/../b?x=1 HTTP/1.1\r\nHost: Example.com:8080\r\nConnection: keep-alive, X-Secret\r\n"
	      "X-Secret: s\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy-Connection: x\r\nUpgrade: h2c\r\n"
	      "X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n"
	      "Accept: */*\r\n\r\n",
	      32768);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_assert_eq(ps.h.event, HTTP1_EV_HEADERS);
	cr_assert_eq(ps.info.host, 0);
	int n = http1_rewrite_request(&ps.h, &ps.info, &ps.p, &fwd, out, sizeof(out));
	cr_assert_gt(n, 0);
	out[n] = 0;
	cr_expect(strncmp(out, "GET /a/../b?x=1 HTTP/1.1\r\n", 26) == 0, "%s", out);
	cr_expect(strstr(out, "\r\nHost: Example.com:8080\r\n"));
	cr_expect(strstr(out, "\r\nAccept: */*\r\n"));
	cr_expect_null(strstr(out, "X-Secret"), "Connection-named header kept: %s", out);
	cr_expect_null(strstr(out, "Keep-Alive"));
	cr_expect_null(strstr(out, "TE:"));
	cr_expect_null(strstr(out, "Proxy-Connection"));
	cr_expect_null(strstr(out, "Upgrade"));
	cr_expect_null(strstr(out, "Connection:"));
	cr_expect_null(strstr(out, "6.6.6.6"), "client X-Forwarded-For trusted: %s", out);
	cr_expect(strstr(out, "\r\nX-Forwarded-For: 192.0.2.7\r\n"));
	cr_expect(strstr(out, "\r\nX-Real-IP: 192.0.2.7\r\n"));
	cr_expect(strstr(out, "\r\nX-Forwarded-Proto: http\r\n"));
	cr_expect(strstr(out, "\r\nX-Forwarded-Host: Example.com:8080\r\n"));
	cr_expect(strstr(out, "\r\nX-Forwarded-Port: 80\r\n"));
	cr_expect(strstr(out, "\r\nX-Request-ID: generated-id\r\n"));
	cr_expect(n > 4 && !memcmp(out + n - 4, "\r\n\r\n", 4));
	done(&ps);
}

Test(http1, request_id_kept_and_expect_stripped)
{
	struct parsed ps;
	char out[4096];
	struct http1_fwd f = fwd;

	parse(&ps, HTTP_REQUEST,
	      "POST /up HTTP/1.1\r\nHost: h\r\nX-Request-ID: abc\r\nExpect: 100-continue\r\n"
	      "Content-Length: 5\r\n\r\n",
	      32768);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect(ps.info.expect_continue);
	cr_expect_not(ps.info.bad_expect);
	f.strip_expect = true;
	int n = http1_rewrite_request(&ps.h, &ps.info, &ps.p, &f, out, sizeof(out));
	cr_assert_gt(n, 0);
	out[n] = 0;
	cr_expect(strstr(out, "X-Request-ID: abc\r\n"));
	cr_expect_null(strstr(out, "generated-id"));
	cr_expect_null(strstr(out, "Expect"));
	cr_expect(strstr(out, "Content-Length: 5\r\n"));
	done(&ps);

	/* Named in Connection, the client's ID is hop-by-hop: ringress's own
	 * goes instead of none. */
	forward_request(&ps, "GET / HTTP/1.1\r\nHost: h\r\nConnection: X-Request-ID\r\nX-Request-ID: abc\r\n\r\n",
			out, sizeof(out));
	cr_expect_null(strstr(out, "abc"));
	cr_expect(strstr(out, "\r\nX-Request-ID: generated-id\r\n"), "%s", out);
	done(&ps);

	/* Several: one goes, the last with a value. */
	forward_request(&ps,
			"GET / HTTP/1.1\r\nHost: h\r\nX-Request-ID: one\r\nX-Request-ID: two\r\n"
			"X-Request-ID:\r\n\r\n",
			out, sizeof(out));
	cr_expect_null(strstr(out, "one"));
	cr_expect(strstr(out, "\r\nX-Request-ID: two\r\n"), "%s", out);
	cr_expect_null(strstr(strstr(out, "X-Request-ID") + 1, "X-Request-ID"), "%s", out);
	cr_expect_null(strstr(out, "generated-id"));
	done(&ps);
}

Test(http1, framing_conflicts_detected)
{
	struct parsed ps;

	/* llhttp itself refuses CL with TE in a request. */
	parse(&ps, HTTP_REQUEST,
	      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	      32768);
	cr_expect(ps.err != HPE_OK && ps.err != HPE_PAUSED);
	done(&ps);
	parse(&ps, HTTP_REQUEST,
	      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 32768);
	cr_expect(ps.err != HPE_PAUSED || ps.info.bad_length, "differing Content-Length accepted");
	done(&ps);
	parse(&ps, HTTP_REQUEST, "GET / HTTP/1.1\r\nExpect: something\r\nHost: h\r\n\r\n", 32768);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect(ps.info.bad_expect);
	done(&ps);
	parse(&ps, HTTP_REQUEST, "GET / HTTP/1.1\r\nAccept: x\r\n\r\n", 32768);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect_eq(ps.info.host, -1);
	done(&ps);
}

Test(http1, head_limit_and_header_count)
{
	struct parsed ps;
	char big[40000];

	memset(big, 'a', sizeof(big));
	memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
	memcpy(big + sizeof(big) - 5, "\r\n\r\n", 5);
	parse(&ps, HTTP_REQUEST, big, 32768);
	cr_expect_eq(ps.err, HPE_USER, "a 40 KB head fits a 32 KB limit");
	done(&ps);

	struct http1_head h = {.limit = 100};
	cr_expect_eq(http1_head_append(&h, big, 60), 0);
	cr_expect_eq(http1_head_append(&h, big, 60), -E2BIG);
	cr_expect_eq(h.len, 60);
	http1_head_free(&h);

	char many[HTTP1_MAX_HEADERS * 8 + 64];
	size_t n = (size_t)sprintf(many, "GET / HTTP/1.1\r\n");
	for (int i = 0; i <= HTTP1_MAX_HEADERS; i++)
		n += (size_t)sprintf(many + n, "H%d: v\r\n", i % 10);
	sprintf(many + n, "\r\n");
	parse(&ps, HTTP_REQUEST, many, 32768);
	cr_expect(ps.err != HPE_PAUSED);
	cr_expect(ps.h.overflow);
	done(&ps);
}

Test(http1, response_head_rewritten)
{
	struct parsed ps;
	char out[4096];

	parse(&ps, HTTP_RESPONSE,
	      "HTTP/1.1 200 Fine\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
	      "Transfer-Encoding: chunked\r\nX-App: 1\r\n\r\n",
	      65536);
	cr_assert_eq(ps.err, HPE_PAUSED);
	int n = http1_rewrite_response(&ps.h, &ps.info, &ps.p, false, false, false, NULL, out, sizeof(out));
	cr_assert_gt(n, 0);
	out[n] = 0;
	cr_expect(!strncmp(out, "HTTP/1.1 200 Fine\r\n", 19), "%s", out);
	cr_expect(strstr(out, "Transfer-Encoding: chunked\r\n"));
	cr_expect(strstr(out, "X-App: 1\r\n"));
	cr_expect(strstr(out, "Server: ringress\r\n"));
	cr_expect_null(strstr(out, "Keep-Alive"));
	cr_expect_null(strstr(out, "Connection"));

	n = http1_rewrite_response(&ps.h, &ps.info, &ps.p, true, false, true, NULL, out, sizeof(out));
	out[n] = 0;
	cr_expect(strstr(out, "Connection: close\r\n"));
	cr_expect_null(strstr(out, "Transfer-Encoding"), "de-chunked body keeps TE: %s", out);
	n = http1_rewrite_response(&ps.h, &ps.info, &ps.p, false, true, false, NULL, out, sizeof(out));
	out[n] = 0;
	cr_expect(strstr(out, "Connection: keep-alive\r\n"));
	cr_expect_eq(http1_rewrite_response(&ps.h, &ps.info, &ps.p, false, false, false, NULL, out, 20),
		     -ENOSPC);
	done(&ps);

	parse(&ps, HTTP_RESPONSE, "HTTP/1.1 204 No Content\r\nServer: app\r\n\r\n", 65536);
	n = http1_rewrite_response(&ps.h, &ps.info, &ps.p, false, false, false, NULL, out, sizeof(out));
	out[n] = 0;
	cr_expect(strstr(out, "Server: app\r\n"));
	cr_expect_null(strstr(out, "ringress"), "upstream Server replaced: %s", out);
	done(&ps);
}

Test(http1, own_responses)
{
	char out[1024];
	int n = http1_make_response(404, false, false, "Thu, 01 Jan 2026 00:00:00 GMT", out, sizeof(out));
	cr_assert_gt(n, 0);
	out[n] = 0;
	cr_expect(!strncmp(out, "HTTP/1.1 404 Not Found\r\n", 24));
	cr_expect(strstr(out, "Server: ringress\r\n"));
	cr_expect(strstr(out, "Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"));
	cr_expect_null(strstr(out, "Connection: close"));
	const char *body = strstr(out, "\r\n\r\n") + 4;
	const char *cl = strstr(out, "Content-Length: ");
	cr_assert_not_null(cl);
	cr_expect_eq(atoi(cl + 16), (int)strlen(body));

	n = http1_make_response(502, true, true, "d", out, sizeof(out));
	out[n] = 0;
	cr_expect(strstr(out, "Connection: close\r\n"));
	cr_expect(!memcmp(out + n - 4, "\r\n\r\n", 4), "HEAD response has a body");
	cr_expect_str_eq(http1_reason(503), "Service Temporarily Unavailable");
	cr_expect_str_eq(http1_reason(431), "Request Header Fields Too Large");
}

Test(http1, make_redirect)
{
	char out[1024];
	const char *loc = "https://a.example.com/x?y=1";
	int n = http1_make_redirect(308, loc, strlen(loc), false, false, "Thu, 26 Nov 2026 00:00:00 GMT",
				    out, sizeof(out));
	cr_assert_gt(n, 0);
	out[n] = 0;
	cr_expect(!strncmp(out, "HTTP/1.1 308 Permanent Redirect\r\n", 33), "%s", out);
	cr_expect_not_null(strstr(out, "\r\nLocation: https://a.example.com/x?y=1\r\n"));
	cr_expect_null(strstr(out, "Connection: close"));
	/* Content-Length matches the body. */
	const char *cl = strstr(out, "Content-Length: ");
	const char *body = strstr(out, "\r\n\r\n");
	cr_assert(cl && body);
	cr_expect_eq(atoi(cl + 16), (int)strlen(body + 4));
	/* HEAD: the same head, no body. */
	char h[1024];
	int hn = http1_make_redirect(308, loc, strlen(loc), true, true, "Thu, 26 Nov 2026 00:00:00 GMT", h,
				     sizeof(h));
	cr_assert_gt(hn, 0);
	h[hn] = 0;
	cr_expect_not_null(strstr(h, "Connection: close\r\n\r\n"));
	cr_expect_eq(h[hn - 1], '\n');
	cr_expect_eq(strstr(h, "\r\n\r\n") + 4, h + hn, "a HEAD answer has no body");
	/* Too small a buffer. */
	cr_expect_eq(http1_make_redirect(308, loc, strlen(loc), false, false, "d", h, 40), -ENOSPC);
}

/* Host values: every character RFC 3986's reg-name, IPv6 literals and a
 * port use passes; anything else marks the head bad. */
Test(http1, host_characters)
{
	static const char *good[] = {"a.example", "A-b_c~d%41:8080", "[2001:db8::1]:443", "x!$&'()*+,;=",
				     "09azAZ"};
	static const char *bad[] = {"a b", "a/b", "a\"b", "a<b", "a@b", "a\\b", "a{b", "a\x7f", "a\xc3\xa9"};
	char msg[256];
	struct parsed ps;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(msg, sizeof(msg), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
		parse(&ps, HTTP_REQUEST, msg, 4096);
		cr_assert_eq(ps.err, HPE_PAUSED, "%s: %s", good[i], llhttp_errno_name(ps.err));
		cr_expect_eq(ps.info.bad_header, 0, "Host %s refused", good[i]);
		cr_expect_eq(ps.info.host, 0);
		done(&ps);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(msg, sizeof(msg), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad[i]);
		parse(&ps, HTTP_REQUEST, msg, 4096);
		if (ps.err == HPE_PAUSED)
			cr_expect_eq(ps.info.bad_header, 1, "Host %s accepted", bad[i]);
		done(&ps);
	}
}

/* Header names are matched without regard to case, and only whole. */
Test(http1, header_names_case_insensitive)
{
	cr_expect(http1_name_is("Content-Length", 14, "content-length"));
	cr_expect(http1_name_is("CONTENT-LENGTH", 14, "content-length"));
	cr_expect_not(http1_name_is("Content-Lengths", 15, "content-length"));
	cr_expect_not(http1_name_is("Content-Lengt", 13, "content-length"));
	cr_expect_not(http1_name_is("Content_Length", 14, "content-length"));
	struct parsed ps;
	parse(&ps, HTTP_REQUEST, "GET / HTTP/1.1\r\nHOST: a\r\nCONNECTION: Keep-Alive, X-Drop\r\nx-drop: 1\r\n\r\n",
	      4096);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect_eq(ps.info.host, 0);
	cr_expect_str_eq(ps.info.conn_tokens, "x-drop,");
	cr_expect(http1_is_hop_by_hop("X-DROP", 6, &ps.info));
	done(&ps);
}

/* Every name the proxy treats apart, in any case, has its kind (the scan
 * and the rewrites go by it); names one letter off are other headers, and
 * are forwarded. */
Test(http1, header_kinds_by_name)
{
	static const struct {
		const char *name;
		enum http1_kind kind;
	} cases[] = {
		{"Host", HTTP1_K_HOST},
		{"X-REQUEST-ID", HTTP1_K_REQUEST_ID},
		{"TE", HTTP1_K_HOP},
		{"Close", HTTP1_K_HOP},
		{"keep-ALIVE", HTTP1_K_HOP},
		{"Proxy-Connection", HTTP1_K_HOP},
		{"Connection", HTTP1_K_CONNECTION},
		{"Upgrade", HTTP1_K_UPGRADE},
		{"X-Forwarded-For", HTTP1_K_FORWARDING},
		{"x-forwarded-host", HTTP1_K_FORWARDING},
		{"X-Forwarded-Port", HTTP1_K_FORWARDING},
		{"X-FORWARDED-PROTO", HTTP1_K_FORWARDING},
		{"X-Real-Ip", HTTP1_K_FORWARDING},
		{"Server", HTTP1_K_SERVER},
		{"X-Forwarded-Fox", HTTP1_K_OTHER},
		{"X-Forwarded", HTTP1_K_OTHER},
		{"X-Real-IPs", HTTP1_K_OTHER},
		{"Hosts", HTTP1_K_OTHER},
		{"Servers", HTTP1_K_OTHER},
		{"Te-", HTTP1_K_OTHER},
		{"Keep-Alivf", HTTP1_K_OTHER},
		{"Expected", HTTP1_K_OTHER},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[256];
		snprintf(msg, sizeof(msg), "GET / HTTP/1.1\r\nX-First: 1\r\n%s: v\r\n\r\n",
			 cases[i].name);
		struct parsed ps;
		char out[1024];
		forward_request(&ps, msg, out, sizeof(out));
		cr_expect_eq(ps.h.nhdr, 2, "%s", cases[i].name);
		enum http1_kind k = http1_header_kind(cases[i].name, strlen(cases[i].name));
		cr_expect_eq(k, cases[i].kind, "%s: kind %d", cases[i].name, k);
		cr_expect_eq(ps.info.kind[1], cases[i].kind, "%s: the scan's kind %d", cases[i].name,
			     ps.info.kind[1]);
		char line[64];
		snprintf(line, sizeof(line), "\r\n%s: v\r\n", cases[i].name);
		bool kept = cases[i].kind == HTTP1_K_OTHER || cases[i].kind == HTTP1_K_HOST ||
			    cases[i].kind == HTTP1_K_REQUEST_ID || cases[i].kind == HTTP1_K_SERVER;
		cr_expect_eq(strstr(out, line) != NULL, kept, "%s forwarded: %d", cases[i].name, !kept);
		done(&ps);
	}
	/* Expect is its own kind; only 100-continue is taken. */
	struct parsed ps;
	parse(&ps, HTTP_REQUEST, "GET / HTTP/1.1\r\nEXPECT: 100-continue\r\n\r\n", 4096);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect_eq(http1_header_kind("EXPECT", 6), HTTP1_K_EXPECT);
	cr_expect(ps.info.expect_continue);
	done(&ps);
}

/* A head's blocks (its bytes and its header array) go back to the thread's
 * block cache when it is freed, and the next head takes the same ones: the
 * cache neither grows nor falls back to malloc request after request (a
 * header array whose size left its block class did both). */
Test(http1, head_blocks_reused)
{
	const char *msg = "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nUser-Agent: t\r\n\r\n";
	struct parsed ps;
	blk_cache_drain();
	parse(&ps, HTTP_REQUEST, msg, 65536);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_assert_eq(blk_cache_count(), 0);
	done(&ps);
	unsigned cached = blk_cache_count();
	cr_expect_eq(cached, 2, "the head's bytes and its header array: %u", cached);
	for (int i = 0; i < 20; i++) {
		parse(&ps, HTTP_REQUEST, msg, 65536);
		cr_assert_eq(ps.err, HPE_PAUSED);
		cr_expect_eq(blk_cache_count(), cached - 2, "round %d: both blocks reused", i);
		done(&ps);
		cr_expect_eq(blk_cache_count(), cached, "round %d", i);
	}
	blk_cache_drain();
}

/* "close" and "keep-alive" are not kept as tokens (the headers of those
 * names are hop-by-hop by name), and still no such header goes upstream;
 * other tokens of several Connection headers are. */
Test(http1, connection_options_close_and_keep_alive)
{
	struct parsed ps;
	char out[4096];
	parse(&ps, HTTP_REQUEST,
	      "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, Keep-Alive\r\nClose: x\r\n"
	      "Keep-Alive: 5\r\nConnection: X-One ,x-two\r\nX-One: 1\r\nX-Two: 2\r\nX-Three: 3\r\n\r\n",
	      4096);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect_str_eq(ps.info.conn_tokens, "x-one,x-two,");
	int n = http1_rewrite_request(&ps.h, &ps.info, &ps.p, &fwd, out, sizeof(out) - 1);
	cr_assert_gt(n, 0);
	out[n] = 0;
	cr_expect_null(strstr(out, "Close:"), "%s", out);
	cr_expect_null(strstr(out, "Keep-Alive:"), "%s", out);
	cr_expect_null(strstr(out, "X-One:"), "%s", out);
	cr_expect_null(strstr(out, "X-Two:"), "%s", out);
	cr_expect_not_null(strstr(out, "\r\nX-Three: 3\r\n"), "%s", out);
	done(&ps);
	parse(&ps, HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
	      4096);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect_str_eq(ps.info.conn_tokens, "");
	done(&ps);
}

/* Parses msg fed to llhttp one byte at a time, as heads that come in many
 * small reads are. */
static void parse_bytewise(struct parsed *ps, llhttp_type_t type, const char *msg)
{
	memset(ps, 0, sizeof(*ps));
	http1_settings_init(&ps->s);
	llhttp_init(&ps->p, type, &ps->s);
	ps->p.data = &ps->h;
	ps->h.limit = 65536;
	ps->err = HPE_OK;
	for (size_t i = 0; msg[i] && ps->err == HPE_OK; i++) {
		cr_assert_eq(http1_head_append(&ps->h, msg + i, 1), 0);
		ps->err = llhttp_execute(&ps->p, ps->h.buf + i, 1);
	}
	if (ps->err == HPE_PAUSED)
		http1_head_scan(&ps->h, &ps->p, &ps->info);
}

/* Parses a request head in one piece or a byte at a time. */
static void parse_request_fed(struct parsed *ps, const char *msg, bool bytewise)
{
	if (bytewise)
		parse_bytewise(ps, HTTP_REQUEST, msg);
	else
		parse(ps, HTTP_REQUEST, msg, 4096);
}

/* A value folded over lines (obs-fold) is refused: llhttp 8 takes the
 * indented line as more of the value above, and forwarded, the line break
 * inside the value would end the head early and smuggle what follows as a
 * message of its own. Values that only hold spaces, tabs or tokens, fed in
 * one piece or a byte at a time, are not taken for folds. */
Test(http1, folded_values_refused)
{
	static const char *folded[] = {
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\nX-B: c\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n\tb: c\r\n\r\n",
		"GET / HTTP/1.1\r\nX-A: a\r\n  b\r\nHost: a\r\n\r\n",
	};
	struct parsed ps;
	for (size_t i = 0; i < sizeof(folded) / sizeof(folded[0]); i++) {
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			parse_request_fed(&ps, folded[i], bytewise);
			/* Refused by llhttp or by the scan, never forwarded. */
			if (ps.err == HPE_PAUSED) {
				cr_expect_eq(ps.info.bad_field, 1, "fold %zu (bytewise %d) accepted", i, bytewise);
				cr_expect_eq(ps.info.bad_header, 1, "fold %zu (bytewise %d) accepted", i, bytewise);
			}
			done(&ps);
		}
	}
	parse(&ps, HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", 4096);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect_eq(ps.info.bad_field, 1, "folded response header accepted");
	done(&ps);
	parse(&ps, HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nX A: a\r\nContent-Length: 0\r\n\r\n", 4096);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect_eq(ps.info.bad_field, 1, "response header name with a space accepted");
	done(&ps);

	static const char *plain[] = {
		"POST /p?q=1 HTTP/1.1\r\nHost: a.example:8080\r\nUser-Agent: x y  z\r\n"
		"Connection: keep-alive, X-Drop\r\nX-Drop: 1\r\nContent-Length: 3\r\nX-Empty:\r\n"
		"X-Trail: v \t \r\nAccept: text/html, */*;q=0.8\r\nCookie: a=1; b=2\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n"
		"X-Many:    spaced    out   \r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			parse_request_fed(&ps, plain[i], bytewise);
			cr_assert_eq(ps.err, HPE_PAUSED, "head %zu (bytewise %d): %s", i, bytewise,
				     llhttp_errno_name(ps.err));
			cr_expect_eq(ps.info.bad_field, 0, "head %zu (bytewise %d) taken for a fold", i,
				     bytewise);
			cr_expect_eq(ps.info.bad_header, 0, "head %zu (bytewise %d) refused", i, bytewise);
			done(&ps);
		}
	}
	parse_bytewise(&ps, HTTP_REQUEST, plain[0]);
	const char *v;
	size_t vl;
	cr_assert_geq(http1_find_header(&ps.h, "user-agent", &v, &vl), 0);
	cr_expect(vl == 6 && !memcmp(v, "x y  z", 6), "User-Agent fed bytewise: [%.*s]", (int)vl, v);
	done(&ps);
}

/* Every head ringress accepts is forwarded as a head that parses back whole:
 * no line break inside a value, and its end where its blank line is. Heads
 * are made of random pieces (line breaks, folds, spaces, colons, control
 * and high bytes, token characters) after a valid start line; the previous
 * build failed this with folded values. */
Test(http1, rewritten_heads_reparse_cleanly)
{
	static const char *piece[] = {"\r", "\n", "\r\n", " ", "\t", ":", "a", "X", "-", "0",
				      "\r\n ", "\r\n\t", "\x01", "\x7f", "\xff", ";", ",", "\"", "="};
	const int npiece = (int)(sizeof(piece) / sizeof(piece[0]));
	uint64_t seed = 42;
	int accepted = 0;
	for (int it = 0; it < 200000; it++) {
		char msg[512];
		bool resp = it & 1;
		size_t n = (size_t)sprintf(msg, resp ? "HTTP/1.1 200 OK\r\n" : "GET / HTTP/1.1\r\nHost: a\r\n");
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		for (int k = (int)((seed >> 33) % 12); k > 0; k--) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			const char *p = piece[(seed >> 33) % (uint64_t)npiece];
			memcpy(msg + n, p, strlen(p));
			n += strlen(p);
		}
		n += (size_t)sprintf(msg + n, resp ? "\r\nContent-Length: 0\r\n\r\n" : "\r\n\r\n");

		struct parsed ps;
		parse(&ps, resp ? HTTP_RESPONSE : HTTP_REQUEST, msg, 4096);
		if (ps.err != HPE_PAUSED || ps.info.bad_header || ps.info.bad_length) {
			done(&ps);
			continue;
		}
		accepted++;
		char out[4096];
		int o = resp ? http1_rewrite_response(&ps.h, &ps.info, &ps.p, false, false, false, NULL,
						      out, sizeof(out) - 1)
			     : http1_rewrite_request(&ps.h, &ps.info, &ps.p, &fwd, out, sizeof(out) - 1);
		cr_assert_gt(o, 0);
		out[o] = 0;
		const char *end = strstr(out, "\r\n\r\n");
		cr_assert(end && end + 4 == out + o, "head %d ends early when forwarded:\n%s", it, out);
		struct parsed again;
		parse(&again, resp ? HTTP_RESPONSE : HTTP_REQUEST, out, 8192);
		cr_assert_eq(again.err, HPE_PAUSED, "head %d forwarded unparseable (%s):\n%s", it,
			     llhttp_errno_name(again.err), out);
		for (int i = 0; i < again.h.nhdr; i++) {
			const char *v = again.h.buf + again.h.hdr[i].value.off;
			uint32_t vl = again.h.hdr[i].value.len;
			cr_assert(!memchr(v, '\r', vl) && !memchr(v, '\n', vl),
				  "head %d forwarded with a line break in a value:\n%s", it, out);
		}
		done(&again);
		done(&ps);
	}
	cr_expect_gt(accepted, 10000, "only %d random heads were accepted", accepted);
}

/* Feeds a chunked body after the head of ps, cut at `cut` (0: in one
 * piece), through http1_execute_body as the proxy does; returns the last
 * error (HPE_PAUSED with the message event when the message completed). */
static llhttp_errno_t feed_body(struct parsed *ps, const char *body, size_t cut)
{
	llhttp_resume(&ps->p);
	size_t n = strlen(body);
	size_t parts[2][2] = {{0, cut ? cut : n}, {cut ? cut : n, n}};
	llhttp_errno_t e = HPE_OK;
	for (int i = 0; i < 2 && e == HPE_OK; i++)
		if (parts[i][1] > parts[i][0])
			e = http1_execute_body(&ps->p, body + parts[i][0], parts[i][1] - parts[i][0]);
	return e;
}

/* Trailers of a chunked body are forwarded as received: one folded over
 * lines fails the parse wherever the input is cut, while a plain trailer
 * cut anywhere passes, and trailers do not count against the head's 128
 * headers (they have their own 128). */
Test(http1, chunked_trailers)
{
	static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
	static const char *plain = "1\r\nA\r\n0\r\nX-T: some value\r\nX-U: v\r\n\r\n";
	static const char *folded[] = {"1\r\nA\r\n0\r\nX-T: a\r\n b\r\n\r\n",
				       "1\r\nA\r\n0\r\nX-T: a\r\n\tb\r\nX-U: v\r\n\r\n"};
	struct parsed ps;
	for (size_t cut = 0; cut < strlen(plain); cut++) {
		parse(&ps, HTTP_REQUEST, head, 4096);
		cr_assert_eq(ps.err, HPE_PAUSED);
		llhttp_errno_t e = feed_body(&ps, plain, cut);
		cr_expect(e == HPE_PAUSED && ps.h.event == HTTP1_EV_MESSAGE,
			  "plain trailers cut at %zu: %s", cut, llhttp_errno_name(e));
		cr_expect_eq(ps.h.nhdr, 2, "trailers were kept as headers (cut %zu)", cut);
		done(&ps);
	}
	for (size_t f = 0; f < sizeof(folded) / sizeof(folded[0]); f++) {
		for (size_t cut = 0; cut < strlen(folded[f]); cut++) {
			parse(&ps, HTTP_REQUEST, head, 4096);
			llhttp_errno_t e = feed_body(&ps, folded[f], cut);
			cr_expect(!(e == HPE_PAUSED && ps.h.event == HTTP1_EV_MESSAGE),
				  "folded trailer %zu cut at %zu accepted", f, cut);
			done(&ps);
		}
	}
	/* 127 headers and 2 trailers; then 129 trailers. */
	char *big = malloc(16384);
	size_t n = (size_t)sprintf(big, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n");
	for (int i = 0; i < 125; i++)
		n += (size_t)sprintf(big + n, "X-H%d: %d\r\n", i, i);
	sprintf(big + n, "\r\n");
	parse(&ps, HTTP_REQUEST, big, 16384);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect_eq(ps.h.nhdr, 127);
	llhttp_errno_t e = feed_body(&ps, "0\r\nX-A: 1\r\nX-B: 2\r\n\r\n", 0);
	cr_expect(e == HPE_PAUSED && ps.h.event == HTTP1_EV_MESSAGE, "2 trailers after 127 headers: %s",
		  llhttp_errno_name(e));
	done(&ps);
	n = (size_t)sprintf(big, "0\r\n");
	for (int i = 0; i < 129; i++)
		n += (size_t)sprintf(big + n, "X-T%d: %d\r\n", i, i);
	sprintf(big + n, "\r\n");
	parse(&ps, HTTP_REQUEST, head, 4096);
	e = feed_body(&ps, big, 0);
	cr_expect_neq(e, HPE_PAUSED, "129 trailers accepted");
	done(&ps);
	free(big);
}

/* Connection options that do not fit the list of tokens make the head bad:
 * the headers they name would otherwise be forwarded. */
Test(http1, connection_options_overflow)
{
	char msg[2048];
	size_t n = (size_t)sprintf(msg, "HTTP/1.1 200 OK\r\nConnection: ");
	for (int i = 0; i < 21; i++)
		n += (size_t)sprintf(msg + n, "x-%03d,", i);
	n += (size_t)sprintf(msg + n, " X-Internal-Token\r\nX-Internal-Token: s\r\nContent-Length: 0\r\n\r\n");
	struct parsed ps;
	parse(&ps, HTTP_RESPONSE, msg, 4096);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect_eq(ps.info.bad_field, 1, "an option past the list was ignored");
	done(&ps);
	parse(&ps, HTTP_RESPONSE, "HTTP/1.1 200 OK\r\nConnection: x-a, x-b\r\nContent-Length: 0\r\n\r\n", 4096);
	cr_assert_eq(ps.err, HPE_PAUSED);
	cr_expect_eq(ps.info.bad_field, 0);
	done(&ps);
}

/* The scan's reading of Transfer-Encoding (the last coding named) agrees
 * with llhttp's F_CHUNKED, and the proxy refuses the message where they
 * differ or where a next hop could read the codings otherwise: codings in
 * several headers or an empty one. */
Test(http1, transfer_encoding_read_one_way)
{
	static const struct {
		const char *te;
		bool refused;
	} cases[] = {
		{"chunked", false},
		{"chunked ", false},
		{" chunked", false},
		{"Chunked", false},
		{"gzip, chunked", false},
		{"gzip,\tchunked", false},
		{"chunked, gzip", false},
		{"identity", false},
		{"chunked\t", true},
		{"chunked,", true},
		{"chunked, ", true},
		{",chunked", true},
		{"chunked\r\nTransfer-Encoding: chunked", true},
		{"chunked\r\nTransfer-Encoding: ", true},
		{"gzip\r\nTransfer-Encoding: chunked", true},
	};
	char msg[256];
	struct parsed ps;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(msg, sizeof(msg), "HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n", cases[i].te);
		parse(&ps, HTTP_RESPONSE, msg, 4096);
		cr_assert_eq(ps.err, HPE_PAUSED, "[%s]: %s", cases[i].te, llhttp_errno_name(ps.err));
		cr_expect_eq(ps.info.bad_length, cases[i].refused, "[%s]: llhttp chunked %d, bad_length %d",
			     cases[i].te, !!(ps.p.flags & F_CHUNKED), ps.info.bad_length);
		done(&ps);
	}
}

static int out_put(void *user, enum http1_body_ev ev, const char *at, size_t len)
{
	return http1_body_out_put(user, ev, at, len);
}

/* Parses body (after ps's head) cut at `cut`, re-encoding each input as
 * the proxy does; stores what would be forwarded in out. Returns the last
 * parse result. */
static llhttp_errno_t rechunk_all(struct parsed *ps, const char *body, size_t cut, char *out,
				  size_t *out_len, bool plain)
{
	llhttp_resume(&ps->p);
	size_t n = strlen(body);
	size_t bounds[3] = {0, cut && cut < n ? cut : n, n};
	llhttp_errno_t e = HPE_OK;
	*out_len = 0;
	for (int i = 0; i < 2 && e == HPE_OK; i++) {
		size_t len = bounds[i + 1] - bounds[i];
		if (!len)
			continue;
		struct http1_body_out o = {.buf = malloc(len + HTTP1_RECHUNK_SLACK),
					   .cap = len + HTTP1_RECHUNK_SLACK,
					   .plain = plain};
		ps->h.on_body = out_put;
		ps->h.user = &o;
		e = http1_execute_body(&ps->p, body + bounds[i], len);
		memcpy(out + *out_len, o.buf, o.len);
		*out_len += o.len;
		free(o.buf);
	}
	ps->h.on_body = NULL;
	return e;
}

/* Chunked bodies are forwarded in canonical framing, whatever framing llhttp
 * let through (any two bytes after a chunk's data, a CR and any byte ending
 * a size line, extensions, trailers), wherever the input is cut; de-chunked
 * bodies are the data alone. */
Test(http1, chunked_bodies_reencoded)
{
	static const struct {
		const char *in, *out, *plain;
	} cases[] = {
		{"5\r\nHELLO\r\n3\r\nabc\r\n0\r\n\r\n", "5\r\nHELLO\r\n3\r\nabc\r\n0\r\n\r\n", "HELLOabc"},
		{"5\r\nHELLOXX0\r\n\r\n", "5\r\nHELLO\r\n0\r\n\r\n", "HELLO"},
		{"5\rXHELLO\r\n0\r\n\r\n", "5\r\nHELLO\r\n0\r\n\r\n", "HELLO"},
		{"1;ext=1\r\nA\r\n0\r\nX-T: v\r\n\r\n", "1\r\nA\r\n0\r\n\r\n", "A"},
		{"0010\r\n0123456789abcdef\r\n0\r\n\r\n", "10\r\n0123456789abcdef\r\n0\r\n\r\n",
		 "0123456789abcdef"},
		{"0\r\n\r\n", "0\r\n\r\n", ""},
	};
	static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
	char out[256];
	size_t out_len;
	struct parsed ps;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t cut = 0; cut < strlen(cases[i].in); cut++) {
			for (int plain = 0; plain < 2; plain++) {
				parse(&ps, HTTP_REQUEST, head, 4096);
				cr_assert_eq(ps.err, HPE_PAUSED);
				llhttp_errno_t e = rechunk_all(&ps, cases[i].in, cut, out, &out_len, plain);
				cr_expect(e == HPE_PAUSED && ps.h.event == HTTP1_EV_MESSAGE,
					  "case %zu cut %zu: %s", i, cut, llhttp_errno_name(e));
				const char *want = plain ? cases[i].plain : cases[i].out;
				cr_expect(out_len == strlen(want) && !memcmp(out, want, out_len),
					  "case %zu cut %zu plain %d: [%.*s]", i, cut, plain, (int)out_len, out);
				done(&ps);
			}
		}
	}
}

/* A 1xx or 204 goes on without Content-Length or Transfer-Encoding (it has
 * no body and may not say otherwise); a 304 and a 200 keep theirs. */
Test(http1, no_framing_headers_on_1xx_and_204)
{
	static const struct {
		const char *head;
		bool kept;
	} cases[] = {
		{"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", false},
		{"HTTP/1.1 103 Early Hints\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true},
	};
	struct parsed ps;
	char out[1024];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		parse(&ps, HTTP_RESPONSE, cases[i].head, 4096);
		cr_assert_eq(ps.err, HPE_PAUSED);
		int n = http1_rewrite_response(&ps.h, &ps.info, &ps.p, false, false, false, NULL, out,
					       sizeof(out) - 1);
		cr_assert_gt(n, 0);
		out[n] = 0;
		cr_expect_eq(strstr(out, "Content-Length") != NULL, cases[i].kept, "%s", out);
		done(&ps);
	}
}
