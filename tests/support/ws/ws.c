/*
 * ringress-ws - the project's WebSocket echo backend (RFC 6455), for tunnel
 * tests.
 *
 *   ringress-ws --listen ADDR:PORT [--listen ADDR:PORT ...]
 *   ringress-ws --self-test      checks SHA-1 / base64 / the accept key, exit 0
 *
 * One thread per connection, blocking sockets. The upgrade request is parsed
 * with llhttp; a GET with "Upgrade: websocket", "Connection: upgrade" and a
 * Sec-WebSocket-Key gets "101 Switching Protocols" with the matching
 * Sec-WebSocket-Accept (SHA-1 and base64 are written here: no crypto library
 * is linked). Any other request gets a plain 200 "ringress-ws" (keep-alive),
 * a malformed one 400 and a close.
 *
 * After the 101, every data frame (text, binary, continuation) comes back with
 * the same FIN bit, opcode and payload, unmasked; ping is answered with pong
 * (same payload), pong is ignored, close is answered with close (same payload)
 * and the connection ends. Client frames must be masked (else close 1002).
 * Payloads up to 64 MiB per frame.
 *
 * One log line per connection (stdout): "conn N open", "conn N upgraded",
 * "conn N closed frames=F bytes=B". SIGTERM / SIGINT: exit 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define WS_MAX_LISTEN 8
#define WS_MAX_HEAD (64 * 1024)
#define WS_MAX_PAYLOAD (64u * 1024 * 1024)
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- SHA-1 (FIPS 180-1) ---- */

struct sha1 {
	uint32_t h[5];
	uint64_t len;
	unsigned char buf[64];
	size_t n;
};

static uint32_t rol(uint32_t x, int k)
{
	return x << k | x >> (32 - k);
}

static void sha1_block(struct sha1 *s, const unsigned char *p)
{
	uint32_t w[80], a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
		       p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20)
			f = (b & c) | (~b & d), k = 0x5A827999;
		else if (i < 40)
			f = b ^ c ^ d, k = 0x6ED9EBA1;
		else if (i < 60)
			f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
		else
			f = b ^ c ^ d, k = 0xCA62C1D6;
		uint32_t t = rol(a, 5) + f + e + k + w[i];
		e = d, d = c, c = rol(b, 30), b = a, a = t;
	}
	s->h[0] += a, s->h[1] += b, s->h[2] += c, s->h[3] += d, s->h[4] += e;
}

static void sha1_init(struct sha1 *s)
{
	static const uint32_t iv[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
	memcpy(s->h, iv, sizeof(iv));
	s->len = 0;
	s->n = 0;
}

static void sha1_update(struct sha1 *s, const void *data, size_t len)
{
	const unsigned char *p = data;
	s->len += len;
	while (len) {
		size_t k = 64 - s->n < len ? 64 - s->n : len;
		memcpy(s->buf + s->n, p, k);
		s->n += k, p += k, len -= k;
		if (s->n == 64) {
			sha1_block(s, s->buf);
			s->n = 0;
		}
	}
}

static void sha1_final(struct sha1 *s, unsigned char out[20])
{
	uint64_t bits = s->len * 8;
	unsigned char pad[72] = {0x80};
	size_t padlen = (s->n < 56 ? 56 : 120) - s->n;
	sha1_update(s, pad, padlen);
	for (int i = 0; i < 8; i++)
		pad[i] = (unsigned char)(bits >> (56 - 8 * i));
	sha1_update(s, pad, 8);
	for (int i = 0; i < 20; i++)
		out[i] = (unsigned char)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}

/* ---- base64 (RFC 4648, with padding) ---- */

static void base64(const unsigned char *in, size_t len, char *out)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = i + 1 < len ? a[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? a[v & 63] : '=';
	}
	out[o] = 0;
}

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key GUID)); out >= 29 bytes. */
static void ws_accept(const char *key, size_t klen, char *out)
{
	struct sha1 s;
	unsigned char d[20];
	sha1_init(&s);
	sha1_update(&s, key, klen);
	sha1_update(&s, WS_GUID, strlen(WS_GUID));
	sha1_final(&s, d);
	base64(d, 20, out);
}

static int self_test(void)
{
	static const struct {
		const char *in, *hex;
	} sv[] = {
		{"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
		{"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		 "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
	};
	int bad = 0;
	for (size_t i = 0; i < sizeof(sv) / sizeof(sv[0]); i++) {
		struct sha1 s;
		unsigned char d[20];
		char hex[41];
		sha1_init(&s);
		sha1_update(&s, sv[i].in, strlen(sv[i].in));
		sha1_final(&s, d);
		for (int k = 0; k < 20; k++)
			sprintf(hex + 2 * k, "%02x", d[k]);
		if (strcmp(hex, sv[i].hex)) {
			fprintf(stderr, "sha1(\"%s\") = %s, want %s\n", sv[i].in, hex, sv[i].hex);
			bad++;
		}
	}
	static const struct {
		const char *in, *out;
	} bv[] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foobar", "Zm9vYmFy"}};
	for (size_t i = 0; i < sizeof(bv) / sizeof(bv[0]); i++) {
		char out[16];
		base64((const unsigned char *)bv[i].in, strlen(bv[i].in), out);
		if (strcmp(out, bv[i].out)) {
			fprintf(stderr, "base64(\"%s\") = %s, want %s\n", bv[i].in, out, bv[i].out);
			bad++;
		}
	}
	char acc[32];
	const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
	ws_accept(key, strlen(key), acc);
	if (strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")) {
		fprintf(stderr, "accept(%s) = %s, want s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\n", key, acc);
		bad++;
	}
	if (!bad)
		printf("self-test ok\n");
	return bad ? 1 : 0;
}

/* ---- I/O ---- */

static int send_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/* Buffered reader over a socket: bytes left after the HTTP head come first. */
struct rd {
	int fd;
	char *pre;
	size_t pre_len, pre_off;
};

static int read_full(struct rd *r, void *dst, size_t len)
{
	char *p = dst;
	while (len) {
		if (r->pre_off < r->pre_len) {
			size_t k = r->pre_len - r->pre_off < len ? r->pre_len - r->pre_off : len;
			memcpy(p, r->pre + r->pre_off, k);
			r->pre_off += k, p += k, len -= k;
			continue;
		}
		ssize_t n = recv(r->fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

/* ---- HTTP upgrade request ---- */

struct req {
	char field[64];
	size_t flen;
	bool in_value;
	int hdr; /* 1 upgrade, 2 connection, 3 key, 4 version, 0 other */
	char upgrade[128], connection[256], key[128], version[16];
	bool done;
};

static int on_field(llhttp_t *p, const char *at, size_t len)
{
	struct req *q = p->data;
	if (q->in_value) {
		q->flen = 0;
		q->in_value = false;
	}
	size_t k = q->flen + len < sizeof(q->field) - 1 ? len : sizeof(q->field) - 1 - q->flen;
	memcpy(q->field + q->flen, at, k);
	q->flen += k;
	q->field[q->flen] = 0;
	return 0;
}

static void append(char *dst, size_t cap, const char *at, size_t len)
{
	size_t n = strlen(dst);
	size_t k = n + len < cap - 1 ? len : cap - 1 - n;
	memcpy(dst + n, at, k);
	dst[n + k] = 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
	struct req *q = p->data;
	if (!q->in_value) {
		q->in_value = true;
		q->hdr = !strcasecmp(q->field, "upgrade")                 ? 1
			 : !strcasecmp(q->field, "connection")            ? 2
			 : !strcasecmp(q->field, "sec-websocket-key")     ? 3
			 : !strcasecmp(q->field, "sec-websocket-version") ? 4
									  : 0;
		if (q->hdr == 2 && q->connection[0])
			append(q->connection, sizeof(q->connection), ",", 1);
	}
	switch (q->hdr) {
	case 1: append(q->upgrade, sizeof(q->upgrade), at, len); break;
	case 2: append(q->connection, sizeof(q->connection), at, len); break;
	case 3: append(q->key, sizeof(q->key), at, len); break;
	case 4: append(q->version, sizeof(q->version), at, len); break;
	}
	return 0;
}

static int on_complete(llhttp_t *p)
{
	((struct req *)p->data)->done = true;
	return HPE_PAUSED;
}

/* ---- connection ---- */

static unsigned long g_conn_seq;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

struct conn_arg {
	int fd;
	unsigned long id;
};

static void send_frame(int fd, unsigned char b0, const unsigned char *payload, uint64_t len, int *err)
{
	unsigned char h[10];
	size_t hl;
	h[0] = b0;
	if (len < 126) {
		h[1] = (unsigned char)len;
		hl = 2;
	} else if (len < 65536) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		hl = 4;
	} else {
		h[1] = 127;
		for (int i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
		hl = 10;
	}
	if (*err || send_all(fd, h, hl) || (len && send_all(fd, payload, len)))
		*err = 1;
}

/* The WebSocket part: frames until close or error. */
static void ws_loop(struct rd *r, unsigned long id)
{
	unsigned char *buf = NULL;
	unsigned long frames = 0;
	unsigned long long bytes = 0;
	int err = 0;
	for (;;) {
		unsigned char h[2], ext[8], mask[4];
		if (read_full(r, h, 2))
			break;
		unsigned op = h[0] & 0x0f;
		uint64_t len = h[1] & 0x7f;
		if (len == 126) {
			if (read_full(r, ext, 2))
				break;
			len = (uint64_t)ext[0] << 8 | ext[1];
		} else if (len == 127) {
			if (read_full(r, ext, 8))
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | ext[i];
		}
		if (!(h[1] & 0x80) || len > WS_MAX_PAYLOAD) {
			/* Unmasked client frame (1002) or too big (1009). */
			unsigned char code[2] = {0x03, (h[1] & 0x80) ? 0xf1 : 0xea};
			send_frame(r->fd, 0x88, code, 2, &err);
			break;
		}
		if (read_full(r, mask, 4))
			break;
		unsigned char *nb = realloc(buf, len ? len : 1);
		if (!nb)
			break;
		buf = nb;
		if (len && read_full(r, buf, len))
			break;
		for (uint64_t i = 0; i < len; i++)
			buf[i] ^= mask[i & 3];
		frames++;
		bytes += len;
		if (op == 0x8) { /* close: echo it, then end */
			send_frame(r->fd, 0x88, buf, len, &err);
			break;
		} else if (op == 0x9) { /* ping */
			send_frame(r->fd, 0x8A, buf, len, &err);
		} else if (op == 0xA) { /* pong */
		} else if (op <= 0x2) {
			send_frame(r->fd, h[0] & 0x8f, buf, len, &err);
		} else {
			unsigned char code[2] = {0x03, 0xea};
			send_frame(r->fd, 0x88, code, 2, &err);
			break;
		}
		if (err)
			break;
	}
	free(buf);
	printf("conn %lu closed frames=%lu bytes=%llu\n", id, frames, bytes);
}

static bool has_token(const char *list, const char *tok)
{
	size_t tl = strlen(tok);
	for (const char *p = list; *p;) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		const char *e = p;
		while (*e && *e != ',')
			e++;
		const char *t = e;
		while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if ((size_t)(t - p) == tl && !strncasecmp(p, tok, tl))
			return true;
		p = e;
	}
	return false;
}

static void *conn_main(void *arg)
{
	struct conn_arg *a = arg;
	int fd = a->fd;
	unsigned long id = a->id;
	free(a);
	printf("conn %lu open\n", id);

	llhttp_settings_t st;
	llhttp_settings_init(&st);
	st.on_header_field = on_field;
	st.on_header_value = on_value;
	st.on_message_complete = on_complete;
	char *buf = malloc(WS_MAX_HEAD);
	size_t len = 0;
	for (;;) { /* one request per iteration (plain requests keep alive) */
		struct req q;
		memset(&q, 0, sizeof(q));
		llhttp_t p;
		llhttp_init(&p, HTTP_REQUEST, &st);
		p.data = &q;
		size_t used = 0;
		bool upgrade = false;
		for (;;) {
			if (used < len) {
				const char *start = buf + used;
				llhttp_errno_t e = llhttp_execute(&p, start, len - used);
				if (e == HPE_OK) {
					used = len;
				} else if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
					used = (size_t)(llhttp_get_error_pos(&p) - buf);
					upgrade = e == HPE_PAUSED_UPGRADE;
					break;
				} else {
					static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
								  "Connection: close\r\n\r\n";
					send_all(fd, bad, sizeof(bad) - 1);
					goto out;
				}
			}
			if (len == WS_MAX_HEAD)
				goto out;
			ssize_t n = recv(fd, buf + len, WS_MAX_HEAD - len, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				goto out;
			len += n;
		}
		bool ws = q.done && p.method == HTTP_GET && has_token(q.upgrade, "websocket") &&
			  has_token(q.connection, "upgrade") && q.key[0];
		if (!ws) {
			static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
						 "Content-Length: 12\r\n\r\nringress-ws\n";
			if (send_all(fd, ok, sizeof(ok) - 1))
				goto out;
			if (upgrade) /* an upgrade we do not do: the rest is not HTTP */
				goto out;
			memmove(buf, buf + used, len - used);
			len -= used;
			continue;
		}
		char acc[32], resp[256];
		ws_accept(q.key, strlen(q.key), acc);
		int rl = snprintf(resp, sizeof(resp),
				  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
				  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
				  acc);
		if (send_all(fd, resp, rl))
			goto out;
		printf("conn %lu upgraded\n", id);
		struct rd r = {.fd = fd, .pre = buf, .pre_len = len, .pre_off = used};
		ws_loop(&r, id);
		goto done;
	}
out:
	printf("conn %lu closed\n", id);
done:
	free(buf);
	close(fd);
	return NULL;
}

/* ---- main ---- */

static int listen_on(const char *spec)
{
	char host[64];
	const char *colon = strrchr(spec, ':');
	if (!colon || (size_t)(colon - spec) >= sizeof(host))
		return -1;
	memcpy(host, spec, colon - spec);
	host[colon - spec] = 0;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 512)) {
		perror(spec);
		return -1;
	}
	return fd;
}

static void *accept_main(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			return NULL;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn_arg *a = malloc(sizeof(*a));
		pthread_mutex_lock(&g_lock);
		a->id = ++g_conn_seq;
		pthread_mutex_unlock(&g_lock);
		a->fd = fd;
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&t, &at, conn_main, a)) {
			close(fd);
			free(a);
		}
		pthread_attr_destroy(&at);
	}
}

int main(int argc, char **argv)
{
	int lfd[WS_MAX_LISTEN], nl = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--self-test"))
			return self_test();
		if (!strcmp(argv[i], "--listen") && i + 1 < argc && nl < WS_MAX_LISTEN) {
			if ((lfd[nl++] = listen_on(argv[++i])) < 0)
				return 1;
		} else {
			fprintf(stderr, "usage: ringress-ws --listen ADDR:PORT [...] | --self-test\n");
			return 2;
		}
	}
	if (!nl || self_test() != 0) {
		fprintf(stderr, "usage: ringress-ws --listen ADDR:PORT [...] | --self-test\n");
		return 2;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	for (int i = 0; i < nl; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, accept_main, (void *)(intptr_t)lfd[i]))
			return 1;
	}
	int sig;
	sigwait(&set, &sig);
	printf("signal %d: exiting\n", sig);
	return 0;
}
