/* tls-int.h - internals shared by the files of src/tls (not for others). */
#ifndef RINGRESS_TLS_INT_H
#define RINGRESS_TLS_INT_H

#include "tls/certstore.h"
#include "tls/sni.h"
#include "tls/tls.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <stdatomic.h>

#define TLS_LOG "tls"

/* One certificate (a Secret) and the WOLFSSL_CTX that serves it. */
struct tls_cert {
	WOLFSSL_CTX *ctx;
	char *secret;    /* "namespace/name" or "(self-signed)" */
	char *subject;   /* leaf subject, for logs */
	int key_type;    /* EVP_PKEY_RSA, EVP_PKEY_EC... (wolfSSL's) */
};

struct tls_store {
	atomic_uint refs;
	int min_version, max_version; /* TLS1_x_VERSION */
	long no_versions;             /* WOLFSSL_OP_NO_TLSv1_x inside the range */
	bool tickets;
	int ticket_hint;
	char *ciphers; /* the full list given to wolfSSL, TLS 1.3 suites included */
	struct tls_cert *def;
	struct tls_cert **certs;
	size_t ncerts, capcerts;
	struct tls_sni_map *map; /* host -> struct tls_cert * */
};

/* Counters (tls.c). */
struct tls_counters {
	atomic_uint_fast64_t handshakes, resumed, handshake_errors, errors, close_notify,
		sni_default, secret_errors;
};
extern struct tls_counters tls_counters;

#define tls_count(field) atomic_fetch_add_explicit(&tls_counters.field, 1, memory_order_relaxed)

/* wolfSSL I/O callbacks over the connection's memory (tls.c). */
int tls_io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx);
int tls_io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx);

/* Generates the self-signed default certificate (certstore.c). */
int tls_fake_init(void);
void tls_fake_deinit(void);

/* The certificate SNI name selects (certstore.c). */
const struct tls_cert *tls_store_pick(const struct tls_store *s, const char *name, size_t len);

/* Frees wolfSSL's per-thread cache of ECC fixed-point tables (FP_ECC in
 * Debian's build: about 800 KiB per thread that did ECDSA/ECDHE work): at
 * the end of a shard thread, and on the control thread after each key check,
 * where the cache would only sit. */
void tls_thread_cache_free(void);

#endif
