/* http1.c - HTTP/1.1 heads: collection, validation, rewriting, own responses. */
#include "core/http1.h"

#include "core/blkcache.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Extends span sp, which must end where the head currently ends, or starts it. */
static void span_extend(struct http1_span *sp, uint32_t off, size_t len, bool start)
{
	if (start) {
		sp->off = off;
		sp->len = (uint32_t)len;
	} else {
		sp->len += (uint32_t)len;
	}
}

/* Offset of `at` in h->buf: while a head is parsed, the caller feeds llhttp
 * with bytes already appended to h->buf (http1_head_append). */
static uint32_t head_off(const struct http1_head *h, const char *at)
{
	return (uint32_t)(at - h->buf);
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct http1_head *h = p->data;
	span_extend(&h->url, head_off(h, at), len, h->url.len == 0);
	return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
	struct http1_head *h = p->data;
	span_extend(&h->reason, head_off(h, at), len, h->reason.len == 0);
	return 0;
}

/* The http1_execute_body call in progress on this thread: its number and
 * the bounds of its input. */
static __thread uint32_t body_call;
static __thread const char *body_start, *body_end;

llhttp_errno_t http1_execute_body(llhttp_t *p, const char *data, size_t len)
{
	body_call++;
	body_start = data;
	body_end = data + len;
	return llhttp_execute(p, data, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
	struct http1_head *h = p->data;
	if (h->in_body) { /* a trailer: counted, not kept */
		if (h->last != 1 && ++h->ntrailers > HTTP1_MAX_HEADERS) {
			h->overflow = 1;
			return -1;
		}
		h->last = 1;
		return 0;
	}
	if (h->last != 1) {
		if (h->nhdr >= HTTP1_MAX_HEADERS) {
			h->overflow = 1;
			return -1;
		}
		if (h->nhdr == h->hdr_cap) {
			_Static_assert(16 * sizeof(struct http1_header) == 256,
				       "the first header array is a 256-byte block (blkcache.c)");
			uint16_t cap = h->hdr_cap ? (uint16_t)(h->hdr_cap * 2) : 16;
			struct http1_header *n = h->hdr ? realloc(h->hdr, sizeof(*n) * cap)
						       : blk_alloc(sizeof(*n) * cap, NULL);
			if (!n) {
				h->overflow = HTTP1_OVERFLOW_NOMEM;
				return -1;
			}
			h->hdr = n;
			h->hdr_cap = cap;
		}
		h->nhdr++;
		h->hdr[h->nhdr - 1].value.len = 0;
		h->hdr[h->nhdr - 1].value.off = 0;
		span_extend(&h->hdr[h->nhdr - 1].name, head_off(h, at), len, true);
	} else {
		span_extend(&h->hdr[h->nhdr - 1].name, head_off(h, at), len, false);
	}
	h->last = 1;
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
	struct http1_head *h = p->data;
	if (h->in_body) {
		/* A trailer value comes in one piece per call, unless llhttp
		 * skipped a line break (a fold) or the input ended inside it
		 * (then it goes on at the start of a later call). Trailers are
		 * not forwarded (chunked bodies are re-encoded without them),
		 * but a fold still marks a message no strict parser accepts. */
		bool goes_on = h->tv_call != body_call && h->tv_at_end && at == body_start;
		if (h->last == 2 && !goes_on) {
			h->folded = 1;
			return -1;
		}
		h->tv_call = body_call;
		h->tv_at_end = at + len == body_end;
		h->last = 2;
		return 0;
	}
	struct http1_header *hd = &h->hdr[h->nhdr - 1];
	/* The pieces of one value are contiguous in h->buf (it holds every
	 * byte llhttp parsed), unless llhttp skipped a line break between
	 * them: an obs-fold. Forwarded, the span's line break would end the
	 * head early and smuggle the rest as a message of its own. */
	if (h->last == 2 && head_off(h, at) != hd->value.off + hd->value.len)
		h->folded = 1;
	span_extend(&hd->value, head_off(h, at), len, h->last != 2);
	h->last = 2;
	return 0;
}

static int on_headers_complete(llhttp_t *p)
{
	struct http1_head *h = p->data;
	h->event = HTTP1_EV_HEADERS;
	h->in_body = 1;
	h->last = 0;
	return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
	((struct http1_head *)p->data)->event = HTTP1_EV_MESSAGE;
	return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
	struct http1_head *h = p->data;
	return h->on_body ? h->on_body(h->user, HTTP1_BODY_DATA, at, len) : 0;
}

static int on_chunk_header(llhttp_t *p)
{
	struct http1_head *h = p->data;
	return h->on_body ? h->on_body(h->user, HTTP1_BODY_CHUNK, NULL, (size_t)p->content_length)
			  : 0;
}

static int on_chunk_complete(llhttp_t *p)
{
	struct http1_head *h = p->data;
	return h->on_body ? h->on_body(h->user, HTTP1_BODY_CHUNK_END, NULL,
				       (p->flags & F_TRAILING) ? 1 : 0)
			  : 0;
}

int http1_body_out_put(struct http1_body_out *o, enum http1_body_ev ev, const char *at, size_t len)
{
	char size_line[24];
	const char *s = at;
	size_t n = len;

	if (o->plain && ev != HTTP1_BODY_DATA)
		return 0;
	switch (ev) {
	case HTTP1_BODY_DATA:
		break;
	case HTTP1_BODY_CHUNK:
		if (!len)
			return 0; /* the last chunk is written when it ends */
		n = (size_t)snprintf(size_line, sizeof(size_line), "%zx\r\n", len);
		s = size_line;
		break;
	case HTTP1_BODY_CHUNK_END:
		s = len ? "0\r\n\r\n" : "\r\n";
		n = strlen(s);
		break;
	}
	if (o->len + n > o->cap)
		return -1;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	return 0;
}

void http1_settings_init(llhttp_settings_t *s)
{
	llhttp_settings_init(s);
	s->on_headers_complete = on_headers_complete;
	s->on_message_complete = on_message_complete;
	s->on_body = on_body;
	s->on_chunk_header = on_chunk_header;
	s->on_chunk_complete = on_chunk_complete;
	s->on_url = on_url;
	s->on_status = on_status;
	s->on_header_field = on_header_field;
	s->on_header_value = on_header_value;
}

void http1_head_reset(struct http1_head *h)
{
	h->len = 0;
	h->url.off = h->url.len = 0;
	h->reason.off = h->reason.len = 0;
	h->nhdr = 0;
	h->overflow = 0;
	h->folded = 0;
	h->in_body = 0;
	h->ntrailers = 0;
	h->last = 0;
	h->event = 0;
}

void http1_head_free(struct http1_head *h)
{
	blk_free(h->buf, h->cap);
	blk_free(h->hdr, sizeof(*h->hdr) * h->hdr_cap);
	h->buf = NULL;
	h->hdr = NULL;
	h->cap = 0;
	h->hdr_cap = 0;
	http1_head_reset(h);
}

int http1_head_append(struct http1_head *h, const char *p, size_t n)
{
	if ((size_t)h->len + n > h->limit)
		return -E2BIG;
	if (h->len + n > h->cap) {
		size_t cap = h->cap ? h->cap : 2048;
		while (cap < h->len + n)
			cap *= 2;
		if (cap > h->limit)
			cap = h->limit;
		uint32_t got = (uint32_t)cap;
		char *nb = h->buf ? realloc(h->buf, cap) : blk_alloc(cap, &got);
		if (!nb)
			return -ENOMEM;
		cap = got;
		h->buf = nb;
		h->cap = (uint32_t)cap;
	}
	memcpy(h->buf + h->len, p, n);
	h->len += (uint32_t)n;
	return 0;
}

/* tolower() without the locale table lookup (names and tokens are ASCII). */
static char ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

bool http1_name_is(const char *name, size_t len, const char *lname)
{
	size_t i;
	for (i = 0; i < len; i++) {
		if (!lname[i] || ascii_lower(name[i]) != lname[i])
			return false;
	}
	return lname[i] == 0;
}

/* Trims optional whitespace around [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
	while (*n && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* Takes the next element of a comma-separated list (*list, *n bytes) into
 * *e / *en, trimmed, and moves the list past it. Returns false at the end. */
static bool list_next(const char **list, size_t *n, const char **e, size_t *en)
{
	if (!*list)
		return false;
	const char *comma = memchr(*list, ',', *n);
	size_t el = comma ? (size_t)(comma - *list) : *n;
	*e = *list;
	*en = el;
	trim(e, en);
	if (comma) {
		*n -= el + 1;
		*list = comma + 1;
	} else {
		*list = NULL;
	}
	return true;
}

/* True when element e (en bytes) is token (lower case), ignoring case. */
static bool elem_is(const char *e, size_t en, const char *token)
{
	size_t tl = strlen(token);
	return en == tl && !strncasecmp(e, token, tl);
}

/* Character sets as 256-bit maps (one test per byte on the hot path). */
static bool in_set(const uint64_t set[4], unsigned char c)
{
	return (set[c >> 6] >> (c & 63)) & 1;
}

/* RFC 9110 token characters: ALPHA DIGIT !#$%&'*+-.^_`|~ */
static const uint64_t tchar_set[4] = {0x03ff6cfa00000000ULL, 0x57ffffffc7fffffeULL, 0, 0};
/* Host value characters: ALPHA DIGIT -._~%!$&'()*+,;=:[] */
static const uint64_t host_set[4] = {0x2fff7ff200000000ULL, 0x47fffffeaffffffeULL, 0, 0};

static bool is_tchar(unsigned char c)
{
	return in_set(tchar_set, c);
}

/* A Host value: reg-name or IPv4 with an optional port, or [IPv6]:port. */
static bool host_valid(const char *v, size_t n)
{
	if (!n)
		return true; /* empty Host is allowed (RFC 9112 3.2) */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (!in_set(host_set, c))
			return false;
	}
	return true;
}

/* True when a header name is a token. Names are short: a scalar loop;
 * vectorized, clang's gathers cost more than they save (perf: a third of
 * the scan's time at 64 connections). */
static bool name_is_token(const char *n, size_t nl)
{
	bool bad = !nl;
#ifdef __clang__
#pragma clang loop vectorize(disable) interleave(disable)
#endif
	for (size_t k = 0; k < nl; k++)
		bad |= !is_tchar((unsigned char)n[k]);
	return !bad;
}

/* Adds the tokens of a Connection value to out->conn_tokens ("a,b,", lower
 * case) at *ct, leaving out "close" and "keep-alive": headers of those names
 * are hop-by-hop anyway (http1_is_hop_by_hop), and the usual "Connection:
 * keep-alive" then costs no walk of the list per header. Options that do
 * not fit make the head bad_field (no real client or server lists 126
 * bytes of them). */
static void conn_collect(struct http1_info *out, size_t *ct, const char *v, size_t vl,
			 bool *upgrade)
{
	const char *e;
	size_t en;
	while (list_next(&v, &vl, &e, &en)) {
		if (elem_is(e, en, "upgrade"))
			*upgrade = true;
		if (!en || elem_is(e, en, "close") || elem_is(e, en, "keep-alive"))
			continue;
		if (*ct + en + 2 > sizeof(out->conn_tokens)) {
			/* The headers it names would go through: refuse. */
			out->bad_field = 1;
			continue;
		}
		for (size_t k = 0; k < en; k++)
			out->conn_tokens[(*ct)++] = ascii_lower(e[k]);
		out->conn_tokens[(*ct)++] = ',';
	}
}

enum http1_kind http1_header_kind(const char *n, size_t nl)
{
	switch (nl) {
	case 2:
		return http1_name_is(n, nl, "te") ? HTTP1_K_HOP : HTTP1_K_OTHER;
	case 4:
		return http1_name_is(n, nl, "host") ? HTTP1_K_HOST : HTTP1_K_OTHER;
	case 5: /* a reserved name (RFC 9110 16.3.2.2), as the option "close" */
		return http1_name_is(n, nl, "close") ? HTTP1_K_HOP : HTTP1_K_OTHER;
	case 6:
		if (http1_name_is(n, nl, "expect"))
			return HTTP1_K_EXPECT;
		return http1_name_is(n, nl, "server") ? HTTP1_K_SERVER : HTTP1_K_OTHER;
	case 7:
		return http1_name_is(n, nl, "upgrade") ? HTTP1_K_UPGRADE : HTTP1_K_OTHER;
	case 9:
		return http1_name_is(n, nl, "x-real-ip") ? HTTP1_K_FORWARDING : HTTP1_K_OTHER;
	case 10:
		if (http1_name_is(n, nl, "connection"))
			return HTTP1_K_CONNECTION;
		return http1_name_is(n, nl, "keep-alive") ? HTTP1_K_HOP : HTTP1_K_OTHER;
	case 12:
		return http1_name_is(n, nl, "x-request-id") ? HTTP1_K_REQUEST_ID : HTTP1_K_OTHER;
	case 14:
		return http1_name_is(n, nl, "content-length") ? HTTP1_K_CL : HTTP1_K_OTHER;
	case 15:
		return http1_name_is(n, nl, "x-forwarded-for") ? HTTP1_K_FORWARDING : HTTP1_K_OTHER;
	case 16:
		if (http1_name_is(n, nl, "proxy-connection"))
			return HTTP1_K_HOP;
		return http1_name_is(n, nl, "x-forwarded-host") ||
				       http1_name_is(n, nl, "x-forwarded-port")
			       ? HTTP1_K_FORWARDING
			       : HTTP1_K_OTHER;
	case 17:
		if (http1_name_is(n, nl, "transfer-encoding"))
			return HTTP1_K_TE;
		return http1_name_is(n, nl, "x-forwarded-proto") ? HTTP1_K_FORWARDING
								 : HTTP1_K_OTHER;
	}
	return HTTP1_K_OTHER;
}

void http1_head_scan(const struct http1_head *h, const llhttp_t *p, struct http1_info *out)
{
	const char *cl_val = NULL;
	size_t cl_len = 0, ct = 0;
	bool has_te = false, chunked = false, conn_upgrade = false, has_upgrade = false;

	memset(out, 0, offsetof(struct http1_info, kind));
	out->host = -1;
	out->request_id = -1;
	out->bad_field = h->folded;
	for (int i = 0; i < h->nhdr; i++) {
		const char *n = h->buf + h->hdr[i].name.off;
		size_t nl = h->hdr[i].name.len;
		const char *v = h->buf + h->hdr[i].value.off;
		size_t vl = h->hdr[i].value.len;
		trim(&v, &vl);
		if (!name_is_token(n, nl))
			out->bad_field = 1;
		enum http1_kind k = http1_header_kind(n, nl);
		out->kind[i] = (uint8_t)k;
		switch (k) {
		case HTTP1_K_HOST:
			if (out->host >= 0 || !host_valid(v, vl))
				out->bad_header = 1;
			else
				out->host = i;
			break;
		case HTTP1_K_REQUEST_ID:
			if (vl)
				out->request_id = i;
			break;
		case HTTP1_K_EXPECT:
			if (vl == 12 && !strncasecmp(v, "100-continue", 12))
				out->expect_continue = 1;
			else
				out->bad_expect = 1;
			break;
		case HTTP1_K_TE: {
			/* Framing follows the last coding named. One header
			 * with no empty coding: a next hop that reads only
			 * the first or the last line, or an empty one as
			 * none, must not frame the body otherwise. */
			if (has_te)
				out->bad_length = 1;
			has_te = true;
			const char *e;
			size_t en;
			while (list_next(&v, &vl, &e, &en)) {
				if (!en)
					out->bad_length = 1;
				chunked = elem_is(e, en, "chunked");
			}
			break;
		}
		case HTTP1_K_UPGRADE:
			has_upgrade = true;
			break;
		case HTTP1_K_CL:
			if (cl_val && (cl_len != vl || memcmp(cl_val, v, vl)))
				out->bad_length = 1;
			cl_val = v;
			cl_len = vl;
			break;
		case HTTP1_K_CONNECTION:
			conn_collect(out, &ct, v, vl, &conn_upgrade);
			break;
		default:
			break;
		}
	}
	out->conn_tokens[ct] = 0;
	if (out->bad_field)
		out->bad_header = 1;
	if (cl_val && has_te)
		out->bad_length = 1;
	/* Framing follows the last coding named: where llhttp reads it
	 * otherwise (e.g. "chunked\t": not chunked, the body runs to the
	 * close), the forwarded "chunked" would frame it differently. */
	if (chunked != !!(p->flags & F_CHUNKED))
		out->bad_length = 1;
	out->upgrade = conn_upgrade && has_upgrade;
}

/* Whether a header of this kind and name is hop-by-hop: the kinds that
 * always are, and a name among info's Connection tokens (which never strip
 * framing headers or Host). */
static bool hop_by_hop(enum http1_kind kind, const char *name, size_t len,
		       const struct http1_info *info)
{
	switch (kind) {
	case HTTP1_K_HOP:
	case HTTP1_K_CONNECTION:
	case HTTP1_K_UPGRADE:
		return true;
	case HTTP1_K_TE:
	case HTTP1_K_CL:
	case HTTP1_K_HOST:
		return false;
	default:
		break;
	}
	if (!info->conn_tokens[0])
		return false;
	/* conn_tokens is "a,b,c," */
	for (const char *t = info->conn_tokens; *t;) {
		const char *comma = strchr(t, ',');
		size_t tl = comma ? (size_t)(comma - t) : strlen(t);
		if (tl == len && !strncasecmp(t, name, len))
			return true;
		if (!comma)
			break;
		t = comma + 1;
	}
	return false;
}

bool http1_is_hop_by_hop(const char *name, size_t len, const struct http1_info *info)
{
	return hop_by_hop(http1_header_kind(name, len), name, len, info);
}

size_t http1_target_origin(const char *url, size_t len, const char **auth, size_t *alen)
{
	size_t i, start;

	if (auth)
		*auth = url;
	if (alen)
		*alen = 0;
	if (!len || !isalpha((unsigned char)url[0]))
		return 0;
	for (i = 1; i < len; i++) {
		unsigned char c = (unsigned char)url[i];
		if (!isalnum(c) && c != '+' && c != '-' && c != '.')
			break;
	}
	if (len - i < 3 || memcmp(url + i, "://", 3))
		return 0;
	start = i += 3;
	while (i < len && url[i] != '/' && url[i] != '?' && url[i] != '#')
		i++;
	if (auth)
		*auth = url + start;
	if (alen)
		*alen = i - start;
	return i;
}

/* Bounded appender. */
struct out {
	char *p;
	size_t len, cap;
	bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || o->len + n > o->cap) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

/* A string literal: its length is known at compile time. */
#define put_lit(o, lit) put(o, "" lit, sizeof(lit) - 1)

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->full)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->full = true;
		return;
	}
	o->len += (size_t)n;
}

/* Appends a decimal number (the hot path avoids printf). */
static void put_uint(struct out *o, unsigned v)
{
	char d[12];
	int n = 0;
	do {
		d[sizeof(d) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < (int)sizeof(d));
	put(o, d + sizeof(d) - n, (size_t)n);
}

/* "Name: value\r\n" with the value trimmed: one bounds check per header. */
static void put_header(struct out *o, const struct http1_head *h, int i)
{
	const struct http1_header *hd = &h->hdr[i];
	const char *v = h->buf + hd->value.off;
	size_t vl = hd->value.len, nl = hd->name.len;
	trim(&v, &vl);
	if (o->full || o->len + nl + vl + 4 > o->cap) {
		o->full = true;
		return;
	}
	char *d = o->p + o->len;
	memcpy(d, h->buf + hd->name.off, nl);
	d += nl;
	memcpy(d, ": ", 2);
	memcpy(d + 2, v, vl);
	memcpy(d + 2 + vl, "\r\n", 2);
	o->len += nl + vl + 4;
}

int http1_rewrite_request(const struct http1_head *h, const struct http1_info *info,
			  const llhttp_t *p, const struct http1_fwd *f, char *out, size_t cap)
{
	struct out o = {.p = out, .cap = cap};

	/* Absolute form goes upstream in origin form (the Host header carries
	 * the authority). */
	const char *url = h->buf + h->url.off;
	size_t skip = http1_target_origin(url, h->url.len, NULL, NULL);
	size_t ul = h->url.len - skip;
	url += skip;
	puts_(&o, llhttp_method_name((llhttp_method_t)p->method));
	put(&o, " ", 1);
	if (!ul || *url == '?')
		put(&o, "/", 1);
	put(&o, url, ul);
	put_lit(&o, " HTTP/1.1\r\n");
	bool rid_sent = false;
	for (int i = 0; i < h->nhdr; i++) {
		const char *n = h->buf + h->hdr[i].name.off;
		size_t nl = h->hdr[i].name.len;
		enum http1_kind k = info->kind[i];
		if (f->upgrade && k == HTTP1_K_UPGRADE) {
			put_header(&o, h, i);
			continue;
		}
		/* Forwarding headers: the proxy sets them, never a client. */
		if (hop_by_hop(k, n, nl, info) || k == HTTP1_K_FORWARDING)
			continue;
		if (f->strip_expect && k == HTTP1_K_EXPECT)
			continue;
		/* One X-Request-ID goes upstream: the client's (the last
		 * non-empty one) or, when it sent none or named it in
		 * Connection, ringress's own. */
		if (k == HTTP1_K_REQUEST_ID) {
			if (i != info->request_id)
				continue;
			rid_sent = true;
		}
		put_header(&o, h, i);
	}
	put_lit(&o, "X-Forwarded-For: ");
	puts_(&o, f->client_ip);
	put(&o, "\r\n", 2);
	if (info->host >= 0) {
		const char *v = h->buf + h->hdr[info->host].value.off;
		size_t vl = h->hdr[info->host].value.len;
		trim(&v, &vl);
		put_lit(&o, "X-Forwarded-Host: ");
		put(&o, v, vl);
		put(&o, "\r\n", 2);
	}
	put_lit(&o, "X-Forwarded-Port: ");
	put_uint(&o, f->port);
	put_lit(&o, "\r\nX-Forwarded-Proto: ");
	puts_(&o, f->proto);
	put_lit(&o, "\r\nX-Real-IP: ");
	puts_(&o, f->client_ip);
	put(&o, "\r\n", 2);
	if (!rid_sent) {
		put_lit(&o, "X-Request-ID: ");
		puts_(&o, f->request_id);
		put(&o, "\r\n", 2);
	}
	if (f->upgrade)
		put_lit(&o, "Connection: upgrade\r\n");
	put(&o, "\r\n", 2);
	return o.full ? -ENOSPC : (int)o.len;
}

int http1_rewrite_response(const struct http1_head *h, const struct http1_info *info,
			   const llhttp_t *p, bool close, bool client_keepalive_10, bool drop_te,
			   const char *extra, char *out, size_t cap)
{
	struct out o = {.p = out, .cap = cap};
	bool server = false;
	bool upgrade = p->status_code == 101;

	put_lit(&o, "HTTP/1.1 ");
	put_uint(&o, p->status_code);
	put(&o, " ", 1);
	if (h->reason.len)
		put(&o, h->buf + h->reason.off, h->reason.len);
	else
		puts_(&o, http1_reason(p->status_code));
	put(&o, "\r\n", 2);
	for (int i = 0; i < h->nhdr; i++) {
		const char *n = h->buf + h->hdr[i].name.off;
		size_t nl = h->hdr[i].name.len;
		enum http1_kind k = info->kind[i];
		if (upgrade && (k == HTTP1_K_UPGRADE || k == HTTP1_K_CONNECTION)) {
			put_header(&o, h, i);
			continue;
		}
		if (hop_by_hop(k, n, nl, info))
			continue;
		if (drop_te && k == HTTP1_K_TE)
			continue;
		/* A 1xx or 204 has no body, and may not say otherwise (RFC 9110
		 * 8.6, RFC 9112 6.1): a client could read one. */
		if ((p->status_code < 200 || p->status_code == 204) &&
		    (k == HTTP1_K_CL || k == HTTP1_K_TE))
			continue;
		if (k == HTTP1_K_SERVER)
			server = true;
		put_header(&o, h, i);
	}
	if (!server && p->status_code >= 200)
		put_lit(&o, "Server: ringress\r\n");
	if (extra && p->status_code >= 200)
		puts_(&o, extra);
	if (!upgrade && p->status_code >= 200) {
		if (close)
			put_lit(&o, "Connection: close\r\n");
		else if (client_keepalive_10)
			put_lit(&o, "Connection: keep-alive\r\n");
	}
	put(&o, "\r\n", 2);
	return o.full ? -ENOSPC : (int)o.len;
}

int http1_find_header(const struct http1_head *h, const char *lname, const char **val,
		      size_t *len)
{
	for (int i = 0; i < h->nhdr; i++) {
		if (!http1_name_is(h->buf + h->hdr[i].name.off, h->hdr[i].name.len, lname))
			continue;
		*val = h->buf + h->hdr[i].value.off;
		*len = h->hdr[i].value.len;
		trim(val, len);
		return i;
	}
	return -1;
}

int http1_find_cookie(const struct http1_head *h, const char *name, const char **val,
		      size_t *len)
{
	size_t nl = strlen(name);
	for (int i = 0; i < h->nhdr; i++) {
		if (!http1_name_is(h->buf + h->hdr[i].name.off, h->hdr[i].name.len, "cookie"))
			continue;
		const char *p = h->buf + h->hdr[i].value.off;
		size_t n = h->hdr[i].value.len;
		while (n) {
			const char *semi = memchr(p, ';', n);
			size_t el = semi ? (size_t)(semi - p) : n;
			const char *e = p;
			size_t en = el;
			trim(&e, &en);
			if (en > nl && e[nl] == '=' && !memcmp(e, name, nl)) {
				*val = e + nl + 1;
				*len = en - nl - 1;
				return 0;
			}
			if (!semi)
				break;
			n -= el + 1;
			p = semi + 1;
		}
	}
	return -ENOENT;
}

const char *http1_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Request Entity Too Large";
	case 414: return "Request-URI Too Large";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Temporarily Unavailable";
	case 504: return "Gateway Time-out";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

/* A response made by ringress, with a Location header when location is set. */
static int make_local(int status, const char *location, size_t loc_len, bool head, bool close,
		      const char *date, char *out, size_t cap)
{
	struct out o = {.p = out, .cap = cap};
	const char *reason = http1_reason(status);
	char body[256];
	int blen = 0;

	if (status >= 200 && status != 204 && status != 304)
		blen = snprintf(body, sizeof(body),
				"<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
				"<center><h1>%d %s</h1></center>\r\n<hr><center>ringress</center>\r\n"
				"</body>\r\n</html>\r\n",
				status, reason, status, reason);
	putf(&o, "HTTP/1.1 %d %s\r\n", status, reason);
	if (status >= 200) {
		putf(&o, "Server: ringress\r\nDate: %s\r\n", date);
		if (location) {
			put_lit(&o, "Location: ");
			put(&o, location, loc_len);
			put(&o, "\r\n", 2);
		}
		if (blen)
			putf(&o, "Content-Type: text/html\r\nContent-Length: %d\r\n", blen);
		else if (status != 204 && status != 304)
			put_lit(&o, "Content-Length: 0\r\n");
		if (close)
			put_lit(&o, "Connection: close\r\n");
	}
	put(&o, "\r\n", 2);
	if (blen && !head)
		put(&o, body, (size_t)blen);
	return o.full ? -ENOSPC : (int)o.len;
}

int http1_make_response(int status, bool head, bool close, const char *date, char *out,
			size_t cap)
{
	return make_local(status, NULL, 0, head, close, date, out, cap);
}

int http1_make_redirect(int status, const char *location, size_t loc_len, bool head, bool close,
			const char *date, char *out, size_t cap)
{
	return make_local(status, location, loc_len, head, close, date, out, cap);
}
