/* http1.h - HTTP/1.1 message heads: collection from llhttp callbacks,
 * validation, header rewriting for both directions, and the short
 * responses ringress makes itself. Pure functions: no I/O. */
#ifndef RINGRESS_HTTP1_H
#define RINGRESS_HTTP1_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_HEADERS 128

struct http1_span {
	uint32_t off, len;
};

/* What a header is to the proxy, by its name. */
enum http1_kind {
	HTTP1_K_OTHER = 0,
	HTTP1_K_HOST,
	HTTP1_K_REQUEST_ID,  /* X-Request-ID */
	HTTP1_K_EXPECT,
	HTTP1_K_TE,          /* Transfer-Encoding */
	HTTP1_K_CL,          /* Content-Length */
	HTTP1_K_CONNECTION,
	HTTP1_K_UPGRADE,
	HTTP1_K_HOP,         /* TE, Keep-Alive, Proxy-Connection, Close */
	HTTP1_K_FORWARDING,  /* X-Forwarded-For, -Host, -Port, -Proto, X-Real-IP */
	HTTP1_K_SERVER,
};

/* 16 bytes: the first array of 16 headers fits the 256-byte block class
 * (blkcache.h). */
struct http1_header {
	struct http1_span name, value;
};

/* What the body hook of a head receives while a body is parsed. */
enum http1_body_ev {
	HTTP1_BODY_DATA,      /* at, len: body bytes (without chunk framing) */
	HTTP1_BODY_CHUNK,     /* len: the size of a chunk that begins (0: the last) */
	HTTP1_BODY_CHUNK_END, /* a chunk ended; len is 1 for the last (after its trailers) */
};

/* A message head copied into one buffer; spans are offsets into buf. */
#define HTTP1_OVERFLOW_NOMEM 2 /* no memory for one more header */

struct http1_head {
	char *buf;
	uint32_t len, cap, limit; /* bytes held, allocated, allowed */
	struct http1_span url;    /* request target */
	struct http1_span reason; /* response reason phrase */
	uint16_t nhdr;
	uint8_t overflow;   /* too many headers, or HTTP1_OVERFLOW_NOMEM */
	uint8_t folded;     /* a header value went on over a new line (obs-fold) */
	uint8_t last;       /* 1: last callback was a field, 2: a value */
	uint8_t event;      /* HTTP1_EV_* of the callback that paused the parser */
	/* After the head: field and value callbacks are trailers (of a
	 * chunked body, parsed by http1_execute_body). They are not kept,
	 * only counted and checked for folds (which fail the parse). */
	uint8_t in_body;
	uint8_t tv_at_end;  /* the last trailer value piece ended its input */
	uint16_t ntrailers;
	/* Optional: receives the body while parsing; non-zero fails the parse. */
	int (*on_body)(void *user, enum http1_body_ev ev, const char *at, size_t len);
	void *user;
	uint16_t hdr_cap;
	uint32_t tv_call;   /* the http1_execute_body call of that piece */
	struct http1_header *hdr; /* allocated on the first header, grown to HTTP1_MAX_HEADERS */
};

/* Facts about a head, computed once by http1_head_scan. */
struct http1_info {
	int host;       /* index of the Host header or -1 */
	int request_id; /* index of X-Request-ID or -1 */
	uint8_t expect_continue; /* "Expect: 100-continue" */
	uint8_t bad_expect;      /* another Expect value: 417 */
	uint8_t bad_length;      /* Content-Length with Transfer-Encoding, differing
				  * values, Transfer-Encoding in several headers or
				  * with an empty coding, or a last coding read as
				  * chunked here and not by llhttp (or the reverse:
				  * "chunked\t") */
	uint8_t bad_header;      /* bad_field, two Hosts, or a bad Host value */
	uint8_t bad_field;       /* a name that is not a token, a value folded over
				  * lines (obs-fold, RFC 9112 5.2), or Connection
				  * options beyond conn_tokens: 400 for a request,
				  * 502 for a response */
	uint8_t upgrade;         /* Connection: upgrade + Upgrade present */
	/* Tokens of the Connection headers but close and keep-alive (lower
	 * case, each followed by a comma). */
	char conn_tokens[128];
	/* Each header's enum http1_kind, for the rewrites (last: the scan
	 * clears only what comes before it, and sets one per header). */
	uint8_t kind[HTTP1_MAX_HEADERS];
};

/* The parser pauses (HPE_PAUSED) at the end of a head and of a message. */
enum { HTTP1_EV_NONE = 0, HTTP1_EV_HEADERS = 1, HTTP1_EV_MESSAGE = 2 };

/* Installs the head-collecting callbacks into s (url, status, header field,
 * header value), the pausing callbacks (headers and message complete) and
 * the body hook. parser->data must point at a struct http1_head. */
void http1_settings_init(llhttp_settings_t *s);

/* Resets h for a new message, keeping its buffer. */
void http1_head_reset(struct http1_head *h);

/* llhttp_execute for body bytes (after the head): trailers of a chunked
 * body are checked for folds there, which needs to know where each call's
 * input starts and ends. A folded trailer fails the parse (HPE_USER). */
llhttp_errno_t http1_execute_body(llhttp_t *p, const char *data, size_t len);

/* A body written out again from what llhttp read of it: de-chunked
 * (plain), or chunked in canonical framing ("%x\r\n" data "\r\n" ...
 * "0\r\n\r\n": no extensions, no trailers). Forwarding chunked bytes as
 * received would pass on framing llhttp 8 reads leniently (it does not check
 * the two bytes after a chunk's data, nor the byte after a CR that ends a
 * size line) and a next hop may read otherwise. */
struct http1_body_out {
	char *buf;
	size_t len, cap;
	bool plain;
};

/* Appends what ev means to o. Returns 0, or -1 when o is full. For one
 * input of n bytes, n + HTTP1_RECHUNK_SLACK bytes always suffice. */
int http1_body_out_put(struct http1_body_out *o, enum http1_body_ev ev, const char *at, size_t len);
#define HTTP1_RECHUNK_SLACK 64

/* Releases h's buffer. */
void http1_head_free(struct http1_head *h);

/* Appends raw head bytes to h->buf (the bytes llhttp has just consumed, so
 * that spans recorded by callbacks stay valid). Returns 0 or -E2BIG when the
 * head would exceed h->limit, -ENOMEM. */
int http1_head_append(struct http1_head *h, const char *p, size_t n);

/* Scans headers of the head p has just parsed into h: Host (one, with a
 * valid value), X-Request-ID, Expect, Content-Length and Transfer-Encoding
 * consistency (also with p's reading of them), Connection tokens, header
 * names that are not tokens (RFC 9110 5.1) and folded values (llhttp 8 takes
 * a line that starts with a space or tab as more of the value above; the
 * span would then hold the line break). */
void http1_head_scan(const struct http1_head *h, const llhttp_t *p, struct http1_info *out);

/* The kind of header name (len bytes): one switch on the length, then at
 * most three comparisons. http1_head_scan keeps each header's in its info. */
enum http1_kind http1_header_kind(const char *name, size_t len);

/* Returns true when name (len bytes) equals lname (lower case) ignoring case. */
bool http1_name_is(const char *name, size_t len, const char *lname);

/* Returns true when header name is hop-by-hop for a proxy: Connection,
 * Keep-Alive, Proxy-Connection, TE, Upgrade, Close (reserved, RFC 9110
 * 16.3.2.2), or a token of info->conn_tokens. */
bool http1_is_hop_by_hop(const char *name, size_t len, const struct http1_info *info);

/* What the proxy adds to a request it forwards. */
struct http1_fwd {
	const char *client_ip;  /* X-Forwarded-For, X-Real-IP */
	const char *proto;      /* X-Forwarded-Proto: "http" */
	uint16_t port;          /* X-Forwarded-Port */
	const char *request_id; /* used when the request has none */
	bool strip_expect;      /* ringress answered 100-continue itself */
	bool upgrade;           /* keep Upgrade and send "Connection: upgrade" */
};

/* Where the origin form of a request target starts: for an absolute-form
 * target ("scheme://authority/path?q") the offset of its path (len when it
 * has none), storing the authority in *auth / *alen when they are not NULL;
 * 0 (and an empty authority) for any other form. */
size_t http1_target_origin(const char *url, size_t len, const char **auth, size_t *alen);

/* Finds header lname (lower case); stores its trimmed value. Returns its
 * index or -1. */
int http1_find_header(const struct http1_head *h, const char *lname, const char **val,
		      size_t *len);

/* Finds cookie name in the Cookie headers; stores its value. Returns 0 or
 * -ENOENT. */
int http1_find_cookie(const struct http1_head *h, const char *name, const char **val,
		      size_t *len);

/* Writes the request head to forward upstream into out: the request line as
 * received (with HTTP/1.1), end-to-end headers, then X-Forwarded-For,
 * X-Forwarded-Host, X-Forwarded-Port, X-Forwarded-Proto, X-Real-IP and
 * X-Request-ID (client-supplied X-Forwarded-* and X-Real-IP are dropped).
 * Returns the length or -ENOSPC. */
int http1_rewrite_request(const struct http1_head *h, const struct http1_info *info,
			  const llhttp_t *p, const struct http1_fwd *f, char *out, size_t cap);

/* Writes the response head to send to the client: status line as
 * "HTTP/1.1 code reason", end-to-end headers (without Content-Length and
 * Transfer-Encoding for a 1xx or 204), "Server: ringress" when the
 * upstream sent none, and a Connection header when close is set or the
 * client speaks HTTP/1.0 with keep-alive. drop_te removes Transfer-Encoding
 * (the body is de-chunked for an HTTP/1.0 client). extra (NULL or full
 * "Name: value\r\n" lines) is added to final responses. Returns the length
 * or -ENOSPC. */
int http1_rewrite_response(const struct http1_head *h, const struct http1_info *info,
			   const llhttp_t *p, bool close, bool client_keepalive_10, bool drop_te,
			   const char *extra, char *out, size_t cap);

/* Writes a complete response made by ringress (status 100..599) with a small
 * HTML body (none for HEAD or 1xx/204/304), "Server: ringress", the given
 * date and "Connection: close" when close is set. Returns the length or
 * -ENOSPC. */
int http1_make_response(int status, bool head, bool close, const char *date, char *out,
			size_t cap);

/* Writes a redirect (301..308) to location, with a small body unless head.
 * Returns the length or -ENOSPC. */
int http1_make_redirect(int status, const char *location, size_t loc_len, bool head, bool close,
			const char *date, char *out, size_t cap);

/* Reason phrase of a status code ("Not Found"), or "Unknown". */
const char *http1_reason(int status);

#endif
