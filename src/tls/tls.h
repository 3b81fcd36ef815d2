/* tls.h - TLS termination over wolfSSL, as a transport (core/transport.h).
 *
 * The connection hands received ciphertext to recv() and sends whatever
 * pending() yields; wolfSSL only ever reads and writes memory through custom
 * I/O callbacks. TLS 1.2 and 1.3 (configurable), ALPN "http/1.1" only, SNI
 * picks the certificate (tls/certstore.h; the Host header still routes),
 * stateless session tickets (tls/ticket.h). Core never includes this
 * header; src/main.c does.
 *
 * Contract details beyond transport.h:
 *  - conn_new(ctx): ctx is the snapshot's struct tls_store; the connection
 *    takes a reference to it, released by conn_free.
 *  - recv(): after a positive return, call it again (len 0 is fine) until
 *    it returns 0 or an error: wolfSSL may hold more decrypted data than
 *    cap, or a close_notify/alert that followed the data.
 *  - recv() returns -EPROTO on a fatal error (garbage, refused version, bad
 *    record, fatal alert received) and -ECONNRESET once the peer's
 *    close_notify has arrived (after the data that preceded it). In both
 *    cases flush pending() (it may hold an alert), then close.
 *  - send() before the handshake is complete returns -EAGAIN; -ENOBUFS when
 *    the pending output would exceed TLS_PENDING_MAX (drain it first).
 *  - one connection is used by one thread at a time (its shard). */
#ifndef RINGRESS_TLS_H
#define RINGRESS_TLS_H

#include "core/transport.h"
#include "tls/certstore.h"

#include <stdint.h>

/* Upper bound of a connection's pending output (bytes). */
#define TLS_PENDING_MAX (8u << 20)

extern const struct transport_ops tls_transport_ops;

/* Once at start-up, before any store: initialises wolfSSL, draws the ticket
 * master key (ticket_period_s: key rotation, 0 = 12 h) and generates the
 * self-signed default certificate (ECDSA P-256, "Kubernetes Ingress
 * Controller Fake Certificate", like ingress-nginx). Idempotent. Returns 0
 * or -errno (logged). */
int tls_init(unsigned ticket_period_s);

/* Releases what tls_init made; no store may be alive. */
void tls_deinit(void);

/* Process-wide counters (relaxed atomics; for /metrics). */
struct tls_stats {
	uint64_t handshakes;       /* completed handshakes, resumed included */
	uint64_t resumed;          /* completed with a session ticket */
	uint64_t handshake_errors; /* fatal errors before completion */
	uint64_t errors;           /* fatal errors after completion */
	uint64_t close_notify;     /* close_notify received */
	uint64_t sni_default;      /* handshakes served the default certificate */
	uint64_t secret_errors;    /* Secrets refused by the store */
};

/* Copies the counters. */
void tls_stats_get(struct tls_stats *out);

/* Per-connection details (tc from conn_new), for logs and variables; valid
 * while tc lives. */
const char *tls_conn_server_name(void *tc); /* SNI, or NULL */
const char *tls_conn_protocol(void *tc);    /* "TLSv1.3"..., or NULL */
const char *tls_conn_cipher(void *tc);      /* suite name, or NULL */
const char *tls_conn_secret(void *tc);      /* Secret of the certificate served */
bool tls_conn_resumed(void *tc);            /* resumed with a ticket */

#endif
