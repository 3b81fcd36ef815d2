/* tls.c - the TLS transport: wolfSSL driven through memory buffers. */
#include "tls/tls-int.h"

#include "core/log.h"
#include "tls/ticket.h"

#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct tls_counters tls_counters;

struct tls_conn {
	WOLFSSL *ssl;
	struct tls_store *store;
	/* Input offered by the current recv() call. */
	const char *in;
	size_t in_len, in_off;
	/* Pending output: bytes [out_off, out_len) of out. */
	char *out;
	size_t out_off, out_len, out_cap;
	bool established;
	bool failed;    /* fatal error seen: -EPROTO from now on */
	bool peer_closed; /* close_notify received: -ECONNRESET from now on */
	bool shut;      /* our close_notify queued */
};

/* ---- wolfSSL I/O callbacks ---------------------------------------------- */

int tls_io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct tls_conn *c = ctx;
	size_t n;

	(void)ssl;
	if (!c->in || c->in_off >= c->in_len || sz <= 0)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	n = c->in_len - c->in_off;
	if (n > (size_t)sz)
		n = (size_t)sz;
	memcpy(buf, c->in + c->in_off, n);
	c->in_off += n;
	return (int)n;
}

int tls_io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
	struct tls_conn *c = ctx;
	size_t need;

	(void)ssl;
	if (sz <= 0)
		return 0;
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	need = c->out_len + (size_t)sz;
	if (need > c->out_cap && c->out_off) {
		/* Compact before growing. */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
		need = c->out_len + (size_t)sz;
	}
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *p;

		if (need > TLS_PENDING_MAX)
			return WOLFSSL_CBIO_ERR_GENERAL;
		while (cap < need)
			cap *= 2;
		if (cap > TLS_PENDING_MAX)
			cap = TLS_PENDING_MAX;
		p = realloc(c->out, cap);
		if (!p)
			return WOLFSSL_CBIO_ERR_GENERAL;
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, buf, (size_t)sz);
	c->out_len += (size_t)sz;
	return sz;
}

/* ---- init -------------------------------------------------------------- */

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static bool initialised;

int tls_init(unsigned ticket_period_s)
{
	int r = 0;

	pthread_mutex_lock(&init_lock);
	if (initialised)
		goto out;
	if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
		log_error(TLS_LOG, "wolfSSL_Init failed");
		r = -EIO;
		goto out;
	}
	r = tls_ticket_init(ticket_period_s);
	if (r) {
		log_error(TLS_LOG, "session ticket keys: %s", strerror(-r));
		goto err_wolf;
	}
	r = tls_fake_init();
	if (r)
		goto err_wolf;
	initialised = true;
	log_debug(TLS_LOG, "wolfSSL %s, ticket keys rotated every %u s", wolfSSL_lib_version(),
		  tls_ticket_period());
	goto out;
err_wolf:
	wolfSSL_Cleanup();
out:
	pthread_mutex_unlock(&init_lock);
	return r;
}

void tls_deinit(void)
{
	pthread_mutex_lock(&init_lock);
	if (initialised) {
		tls_fake_deinit();
		wolfSSL_Cleanup();
		initialised = false;
	}
	pthread_mutex_unlock(&init_lock);
}

void tls_stats_get(struct tls_stats *out)
{
#define LOAD(f) out->f = atomic_load_explicit(&tls_counters.f, memory_order_relaxed)
	LOAD(handshakes);
	LOAD(resumed);
	LOAD(handshake_errors);
	LOAD(errors);
	LOAD(close_notify);
	LOAD(sni_default);
	LOAD(secret_errors);
#undef LOAD
}

/* ---- transport ---------------------------------------------------------- */

static char alpn_http11[] = "http/1.1";

static void *tls_conn_new(void *ctx)
{
	struct tls_store *s = ctx;
	struct tls_conn *c;

	if (!s)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->ssl = wolfSSL_new(s->def->ctx);
	if (!c->ssl) {
		free(c);
		return NULL;
	}
	wolfSSL_SetIOReadCtx(c->ssl, c);
	wolfSSL_SetIOWriteCtx(c->ssl, c);
	/* ALPN: http/1.1 only (h2 later). A client that offers ALPN without
	 * it gets no_application_protocol, like nginx; no ALPN is fine. */
	if (wolfSSL_UseALPN(c->ssl, alpn_http11, sizeof(alpn_http11) - 1,
			    WOLFSSL_ALPN_FAILED_ON_MISMATCH) != WOLFSSL_SUCCESS) {
		wolfSSL_free(c->ssl);
		free(c);
		return NULL;
	}
	c->store = tls_store_acquire(s);
	return c;
}

static void tls_conn_free(void *tc)
{
	struct tls_conn *c = tc;

	if (!c)
		return;
	wolfSSL_free(c->ssl);
	tls_store_release(c->store);
	free(c->out);
	free(c);
}

/* Classifies a failed wolfSSL call: 0 to wait for input, or -errno. */
static int tls_failure(struct tls_conn *c, int ret)
{
	int err = wolfSSL_get_error(c->ssl, ret);

	switch (err) {
	case WOLFSSL_ERROR_WANT_READ:
	case WOLFSSL_ERROR_WANT_WRITE:
		return 0;
	case WOLFSSL_ERROR_ZERO_RETURN:
		if (!c->peer_closed)
			tls_count(close_notify);
		c->peer_closed = true;
		return -ECONNRESET;
	default:
		if (!c->failed) {
			if (c->established)
				tls_count(errors);
			else
				tls_count(handshake_errors);
			/* A peer's bad input is its business (debug); memory
			 * running out is the operator's (warn). */
			if (err == MEMORY_E || err == MEMORY_ERROR)
				log_warn(TLS_LOG, "out of memory in a TLS %s: closing a connection",
					 c->established ? "connection" : "handshake");
			else
				log_debug(TLS_LOG, "%s: %s (%d)",
					  c->established ? "record error" : "handshake failed",
					  wolfSSL_ERR_reason_error_string((unsigned long)err), err);
		}
		c->failed = true;
		return -EPROTO;
	}
}

static int tls_recv(void *tc, const char *in, size_t len, size_t *used, char *out, size_t cap)
{
	struct tls_conn *c = tc;
	size_t n = 0;
	int r = 0;

	*used = 0;
	if (c->failed)
		return -EPROTO;
	if (c->peer_closed)
		return -ECONNRESET;
	c->in = in;
	c->in_len = len;
	c->in_off = 0;
	if (!c->established) {
		int ret = wolfSSL_accept(c->ssl);

		if (ret != WOLFSSL_SUCCESS) {
			r = tls_failure(c, ret);
			goto out;
		}
		c->established = true;
		tls_count(handshakes);
		if (wolfSSL_session_reused(c->ssl))
			tls_count(resumed);
	}
	while (n < cap) {
		size_t want = cap - n;
		int ret = wolfSSL_read(c->ssl, out + n, want > INT_MAX ? INT_MAX : (int)want);

		if (ret > 0) {
			n += (size_t)ret;
			continue;
		}
		r = tls_failure(c, ret);
		break;
	}
out:
	*used = c->in_off;
	c->in = NULL;
	c->in_len = c->in_off = 0;
	/* Data before a close_notify or an error is still delivered; the
	 * error comes with the next call. */
	if (n)
		return (int)n;
	return r;
}

static int tls_send(void *tc, const char *in, size_t len)
{
	struct tls_conn *c = tc;
	int ret;

	if (c->failed)
		return -EPROTO;
	if (!c->established)
		return -EAGAIN;
	if (c->shut)
		return -EPIPE;
	if (!len)
		return 0;
	if (len > INT_MAX)
		return -EMSGSIZE;
	if (c->out_len - c->out_off + len > TLS_PENDING_MAX)
		return -ENOBUFS;
	ret = wolfSSL_write(c->ssl, in, (int)len);
	if (ret == (int)len)
		return ret;
	/* The send callback never blocks: any failure is fatal. */
	ret = tls_failure(c, ret);
	return ret ? ret : -EPROTO;
}

static size_t tls_pending(void *tc, char *out, size_t cap)
{
	struct tls_conn *c = tc;
	size_t n = c->out_len - c->out_off;

	if (!out)
		return n;
	if (n > cap)
		n = cap;
	if (!n)
		return 0;
	memcpy(out, c->out + c->out_off, n);
	c->out_off += n;
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
		/* Give back what a bulk response grew. */
		if (c->out_cap > 64 * 1024) {
			free(c->out);
			c->out = NULL;
			c->out_cap = 0;
		}
	}
	return n;
}

static bool tls_established(void *tc)
{
	return ((struct tls_conn *)tc)->established;
}

static void tls_shutdown(void *tc)
{
	struct tls_conn *c = tc;

	if (c->shut || c->failed || !c->established)
		return;
	c->shut = true;
	wolfSSL_shutdown(c->ssl); /* queues close_notify; never waits for the peer's */
}

static void tls_ctx_free(void *ctx)
{
	tls_store_release(ctx);
}

void tls_thread_cache_free(void)
{
#ifdef FP_ECC
	wc_ecc_fp_free();
#endif
}

const struct transport_ops tls_transport_ops = {
	.conn_new = tls_conn_new,
	.recv = tls_recv,
	.send = tls_send,
	.pending = tls_pending,
	.established = tls_established,
	.shutdown = tls_shutdown,
	.conn_free = tls_conn_free,
	.ctx_free = tls_ctx_free,
	.thread_exit = tls_thread_cache_free,
};

/* ---- details ------------------------------------------------------------ */

const char *tls_conn_server_name(void *tc)
{
	struct tls_conn *c = tc;

	return wolfSSL_get_servername(c->ssl, WOLFSSL_SNI_HOST_NAME);
}

const char *tls_conn_protocol(void *tc)
{
	struct tls_conn *c = tc;

	return c->established ? wolfSSL_get_version(c->ssl) : NULL;
}

const char *tls_conn_cipher(void *tc)
{
	struct tls_conn *c = tc;

	return c->established ? wolfSSL_get_cipher_name(c->ssl) : NULL;
}

const char *tls_conn_secret(void *tc)
{
	struct tls_conn *c = tc;
	const struct tls_cert *cert = wolfSSL_CTX_get_ex_data(wolfSSL_get_SSL_CTX(c->ssl), 0);

	return cert ? cert->secret : NULL;
}

bool tls_conn_resumed(void *tc)
{
	struct tls_conn *c = tc;

	return c->established && wolfSSL_session_reused(c->ssl);
}
