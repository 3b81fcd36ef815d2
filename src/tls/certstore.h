/* certstore.h - the compiled certificates of one snapshot (snapshot->tls).
 *
 * Built on the control thread from kubernetes.io/tls Secrets, then shared
 * read-only by every shard: one WOLFSSL_CTX per certificate, a host table
 * for SNI (tls/sni.h) and the default certificate. Reference counted: the
 * snapshot holds one reference, every connection accepted while it was
 * current holds another, so a new snapshot (a rotated Secret) is used by
 * the next handshake while open connections keep the certificates they
 * started with. wolfSSL stays behind this header. */
#ifndef RINGRESS_TLS_CERTSTORE_H
#define RINGRESS_TLS_CERTSTORE_H

#include <stdbool.h>
#include <stddef.h>

/* ingress-nginx's defaults (ssl-protocols, ssl-ciphers). */
#define TLS_DEFAULT_PROTOCOLS "TLSv1.2 TLSv1.3"
#define TLS_DEFAULT_CIPHERS                                                                        \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

/* Settings shared by every certificate of a store (flags). Strings are
 * copied by tls_store_new. */
struct tls_options {
	/* --ssl-protocols: space-separated "TLSv1 TLSv1.1 TLSv1.2 TLSv1.3"
	 * (SSLv2/SSLv3 are ignored with a warning). NULL: the default. */
	const char *protocols;
	/* --ssl-ciphers: ':'-separated OpenSSL/wolfSSL suite names for TLS
	 * 1.2 and below. The TLS 1.3 suites are added unless the list names
	 * some itself ("TLS13-AES128-GCM-SHA256" ...). NULL: the default. */
	const char *ciphers;
	/* --ssl-session-tickets=false: no tickets (full handshakes only). */
	bool no_session_tickets;
	/* Ticket lifetime hint in seconds; 0: the key rotation period. */
	unsigned ticket_lifetime_s;
};

struct tls_store;

/* Checks o (protocols, ciphers) without building anything: for flag
 * validation at start-up. Returns 0 or -EINVAL (logged). */
int tls_options_check(const struct tls_options *o);

/* A new store with the default certificate only (the self-signed one made
 * by tls_init). Returns NULL on a bad option (logged) or no memory; holds
 * one reference. tls_init must have succeeded. */
struct tls_store *tls_store_new(const struct tls_options *o);

/* Adds the certificate of Secret secret_name ("namespace/name", for logs)
 * for nhosts hosts (Ingress spec.tls[].hosts; "*.example.com" allowed).
 * cert_pem is tls.crt (leaf first, then its chain), key_pem tls.key (RSA or
 * ECDSA, PKCS#1/SEC1/PKCS#8). Returns 0 when at least the certificate was
 * taken; -EINVAL for a broken PEM, a missing key or a key that does not
 * match the certificate: logged with secret_name, counted, and the hosts
 * keep the default certificate. Per host: a host already mapped keeps its
 * first certificate, a host the certificate does not cover (CN/SAN) is
 * logged and keeps the default certificate (as ingress-nginx). Only before
 * the store is shared (control thread). */
int tls_store_add(struct tls_store *s, const char *const *hosts, size_t nhosts,
		  const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
		  const char *secret_name);

/* Replaces the default certificate (--default-ssl-certificate ns/name).
 * Returns 0, or -EINVAL (logged; the self-signed one stays). */
int tls_store_set_default(struct tls_store *s, const char *cert_pem, size_t cert_len,
			  const char *key_pem, size_t key_len, const char *secret_name);

/* Secret name of the certificate SNI name (len bytes; NULL or 0: no SNI)
 * selects: exact host, then a one-label wildcard, then the default
 * ("(self-signed)" for the generated one). For logs and tests. */
const char *tls_store_select(const struct tls_store *s, const char *name, size_t len);

/* Number of certificates taken (the default not counted). */
size_t tls_store_count(const struct tls_store *s);

/* Takes a reference (e.g. a new snapshot whose Secrets did not change can
 * share its predecessor's store). Returns s. Any thread. */
struct tls_store *tls_store_acquire(struct tls_store *s);

/* Drops a reference; the last one frees the store. NULL is fine. Any
 * thread. */
void tls_store_release(struct tls_store *s);

#endif
