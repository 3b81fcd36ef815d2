/* tls_test.h - helpers shared by the TLS unit tests (header only): fixture
 * loading and an in-memory wolfSSL client wired to the server transport. */
#ifndef RINGRESS_TLS_TEST_H
#define RINGRESS_TLS_TEST_H

#include "core/log.h"
#include "tls/tls.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Path of a file under tests/fixtures, found through $RINGRESS_ROOT. */
static inline const char *tls_fixture_path(const char *rel)
{
	static char buf[4096];
	const char *root = getenv("RINGRESS_ROOT");

	snprintf(buf, sizeof(buf), "%s/tests/fixtures/tls/%s", root && *root ? root : ".", rel);
	return buf;
}

/* A fixture file's bytes (NUL-terminated, caller frees); *len its size. */
static inline char *tls_fixture(const char *rel, size_t *len)
{
	FILE *f = fopen(tls_fixture_path(rel), "rb");
	char *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s", tls_fixture_path(rel));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return buf;
}

static inline void tls_test_init(void)
{
	log_threshold = getenv("TLS_TEST_DEBUG") ? LOG_DEBUG : LOG_ERROR;
	cr_assert_eq(tls_init(0), 0);
}

/* Adds fixture pair name.crt / name.key for hosts; returns tls_store_add's
 * result. */
static inline int tls_add_fixture(struct tls_store *s, const char *name, const char *const *hosts,
				  size_t nhosts)
{
	char crt[64], key[64];
	size_t clen, klen;

	snprintf(crt, sizeof(crt), "%s.crt", name);
	snprintf(key, sizeof(key), "%s.key", name);
	char *c = tls_fixture(crt, &clen), *k = tls_fixture(key, &klen);
	int r = tls_store_add(s, hosts, nhosts, c, clen, k, klen, name);
	free(c);
	free(k);
	return r;
}

/* The store of most tests: rsa (a.example.com, www.a.example.com), ecdsa
 * (b.example.com), wild (*.wild.example.com); default: the self-signed one,
 * or default.crt when with_default. */
static inline struct tls_store *tls_test_store(const struct tls_options *o, bool with_default)
{
	static const char *const rsa_hosts[] = {"a.example.com", "www.a.example.com"};
	static const char *const ec_hosts[] = {"b.example.com"};
	static const char *const wild_hosts[] = {"*.wild.example.com"};
	struct tls_store *s = tls_store_new(o);

	cr_assert_not_null(s);
	cr_assert_eq(tls_add_fixture(s, "rsa", rsa_hosts, 2), 0);
	cr_assert_eq(tls_add_fixture(s, "ecdsa", ec_hosts, 1), 0);
	cr_assert_eq(tls_add_fixture(s, "wild", wild_hosts, 1), 0);
	if (with_default) {
		size_t clen, klen;
		char *c = tls_fixture("default.crt", &clen), *k = tls_fixture("default.key", &klen);

		cr_assert_eq(tls_store_set_default(s, c, clen, k, klen, "default"), 0);
		free(c);
		free(k);
	}
	return s;
}

/* ---- an in-memory client ------------------------------------------------ */

struct tbuf {
	char *p;
	size_t len, off, cap;
};

static inline void tbuf_put(struct tbuf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 1024;
		b->p = realloc(b->p, b->cap);
		cr_assert_not_null(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static inline size_t tbuf_avail(const struct tbuf *b)
{
	return b->len - b->off;
}

static inline void tbuf_free(struct tbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

struct pair {
	WOLFSSL_CTX *cctx;
	WOLFSSL *cli;
	void *srv; /* tls_transport_ops connection */
	struct tbuf c2s, s2c; /* ciphertext each way */
	struct tbuf srv_app;  /* application data the server received */
	int srv_err;          /* first negative result of the server's recv */
	size_t srv_cap;       /* out buffer size given to recv (default 16 KiB) */
	size_t srv_chunk;     /* bytes offered per recv (0: all) */
};

static inline int pair_io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct pair *p = ctx;
	size_t n = tbuf_avail(&p->s2c);

	(void)ssl;
	if (!n)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	if (n > (size_t)sz)
		n = (size_t)sz;
	memcpy(buf, p->s2c.p + p->s2c.off, n);
	p->s2c.off += n;
	return (int)n;
}

static inline int pair_io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct pair *p = ctx;

	(void)ssl;
	tbuf_put(&p->c2s, buf, (size_t)sz);
	return sz;
}

/* method: wolfTLSv1_2_client_method() ...; sni: NULL for none; alpn: a
 * comma-separated list for wolfSSL_UseALPN or NULL. The client verifies
 * the server's chain against ca.crt when verify. */
static inline void pair_init(struct pair *p, struct tls_store *s, WOLFSSL_METHOD *method,
			     const char *sni, const char *alpn, bool verify)
{
	memset(p, 0, sizeof(*p));
	p->cctx = wolfSSL_CTX_new(method);
	cr_assert_not_null(p->cctx);
	if (verify) {
		cr_assert_eq(wolfSSL_CTX_load_verify_locations(p->cctx, tls_fixture_path("ca.crt"),
							       NULL),
			     WOLFSSL_SUCCESS);
		wolfSSL_CTX_set_verify(p->cctx, WOLFSSL_VERIFY_PEER, NULL);
	} else {
		wolfSSL_CTX_set_verify(p->cctx, WOLFSSL_VERIFY_NONE, NULL);
	}
	wolfSSL_CTX_SetIORecv(p->cctx, pair_io_recv);
	wolfSSL_CTX_SetIOSend(p->cctx, pair_io_send);
	p->cli = wolfSSL_new(p->cctx);
	cr_assert_not_null(p->cli);
	wolfSSL_SetIOReadCtx(p->cli, p);
	wolfSSL_SetIOWriteCtx(p->cli, p);
	if (sni)
		cr_assert_eq(wolfSSL_UseSNI(p->cli, WOLFSSL_SNI_HOST_NAME, sni,
					    (unsigned short)strlen(sni)),
			     WOLFSSL_SUCCESS);
	if (alpn) {
		char *a = strdup(alpn);
		cr_assert_eq(wolfSSL_UseALPN(p->cli, a, (unsigned)strlen(a),
					     WOLFSSL_ALPN_FAILED_ON_MISMATCH),
			     WOLFSSL_SUCCESS);
		free(a);
	}
	wolfSSL_UseSessionTicket(p->cli);
	p->srv = tls_transport_ops.conn_new(s);
	cr_assert_not_null(p->srv);
	p->srv_cap = 16384;
}

static inline void pair_free(struct pair *p)
{
	wolfSSL_free(p->cli);
	wolfSSL_CTX_free(p->cctx);
	tls_transport_ops.conn_free(p->srv);
	tbuf_free(&p->c2s);
	tbuf_free(&p->s2c);
	tbuf_free(&p->srv_app);
}

/* Moves the server's pending output to the client. */
static inline void pair_drain_server(struct pair *p)
{
	char buf[3000]; /* odd size on purpose */
	size_t n;

	while ((n = tls_transport_ops.pending(p->srv, buf, sizeof(buf))) > 0)
		tbuf_put(&p->s2c, buf, n);
}

/* Feeds the client's output to the server (srv_chunk bytes per call),
 * keeping what the server does not take; collects application data and
 * the server's output. Returns true when something moved. */
static inline bool pair_feed_server(struct pair *p)
{
	char *out = malloc(p->srv_cap);
	bool moved = false;

	cr_assert_not_null(out);
	for (;;) {
		size_t avail = tbuf_avail(&p->c2s), len = avail, used = 0;

		if (p->srv_chunk && len > p->srv_chunk)
			len = p->srv_chunk;
		int r = tls_transport_ops.recv(p->srv, p->c2s.p + p->c2s.off, len, &used, out,
					       p->srv_cap);

		cr_assert_leq(used, len);
		p->c2s.off += used;
		if (used)
			moved = true;
		if (r < 0) {
			if (!p->srv_err)
				p->srv_err = r;
			break;
		}
		if (r > 0) {
			tbuf_put(&p->srv_app, out, (size_t)r);
			moved = true;
		}
		/* Again while input is left or data came out (tls.h). */
		if (!r && (!used || !tbuf_avail(&p->c2s)))
			break;
	}
	free(out);
	pair_drain_server(p);
	return moved;
}

/* Runs the handshake to its end. Returns 0 when both sides are done, else
 * the client's wolfSSL error (the server's is in p->srv_err). */
static inline int pair_handshake(struct pair *p)
{
	for (int i = 0; i < 50; i++) {
		int r = wolfSSL_connect(p->cli);
		int err = r == WOLFSSL_SUCCESS ? 0 : wolfSSL_get_error(p->cli, r);

		pair_feed_server(p);
		if (err && err != WOLFSSL_ERROR_WANT_READ)
			return err;
		if (p->srv_err)
			return -1;
		if (!err && tls_transport_ops.established(p->srv))
			return 0;
	}
	return -2;
}

/* Client sends data; the server receives it all. */
static inline void pair_client_send(struct pair *p, const void *data, size_t len)
{
	const char *d = data;

	while (len) {
		int chunk = len > 100000 ? 100000 : (int)len;
		int r = wolfSSL_write(p->cli, d, chunk);

		cr_assert_eq(r, chunk, "client write %d err %d", r, wolfSSL_get_error(p->cli, r));
		d += r;
		len -= (size_t)r;
		pair_feed_server(p);
	}
	pair_feed_server(p);
}

/* Server sends data; returns what the client read (caller frees). */
static inline char *pair_server_send(struct pair *p, const void *data, size_t len, size_t *got)
{
	char *buf = malloc(len + 1);
	size_t n = 0;

	cr_assert_eq(tls_transport_ops.send(p->srv, data, len), (int)len);
	pair_drain_server(p);
	while (n < len) {
		int r = wolfSSL_read(p->cli, buf + n, (int)(len - n));
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	*got = n;
	return buf;
}

/* The subject CN of the certificate the client was served (static). */
static inline const char *pair_peer_cn(struct pair *p)
{
	static char cn[256];
	WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(p->cli);
	char *line, *c;

	cn[0] = '\0';
	if (!x)
		return cn;
	line = wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_subject_name(x), NULL, 0);
	c = line ? strstr(line, "CN=") : NULL;
	if (c)
		snprintf(cn, sizeof(cn), "%.*s", (int)strcspn(c + 3, "/"), c + 3);
	XFREE(line, NULL, DYNAMIC_TYPE_OPENSSL);
	wolfSSL_X509_free(x);
	return cn;
}

/* Captures what is written to fd 2 (log lines) between capture_start and
 * capture_end (caller frees the returned text). */
static int capture_saved_fd = -1;
static FILE *capture_file;

static inline void capture_start(void)
{
	capture_file = tmpfile();
	cr_assert_not_null(capture_file);
	capture_saved_fd = dup(2);
	dup2(fileno(capture_file), 2);
}

static inline char *capture_end(void)
{
	long n;
	char *buf;

	dup2(capture_saved_fd, 2);
	close(capture_saved_fd);
	n = lseek(fileno(capture_file), 0, SEEK_END);
	buf = calloc(1, (size_t)n + 1);
	cr_assert_eq(pread(fileno(capture_file), buf, (size_t)n, 0), n);
	fclose(capture_file);
	return buf;
}

#endif
