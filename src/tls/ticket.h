/* ticket.h - stateless session tickets (RFC 5077 / TLS 1.3 PSK tickets).
 *
 * Ticket keys live in memory only. A random 32-byte master secret is drawn at
 * start-up; the key of rotation period e (e = now / period) is
 * HMAC-SHA256(master, "ringress ticket key" || e), so rotation needs no
 * shared mutable state and no lock: every thread derives the current key
 * (cached per thread). New tickets use the current key; a ticket of the
 * previous period is still accepted (and replaced by a new one); older ones
 * mean a full handshake. Tickets are sealed with ChaCha20-Poly1305 (fast
 * without AES-NI). Restarting the process invalidates all tickets. */
#ifndef RINGRESS_TLS_TICKET_H
#define RINGRESS_TLS_TICKET_H

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <stdint.h>
#include <time.h>

/* Default rotation period: 12 hours. */
#define TLS_TICKET_PERIOD_S (12u * 3600u)

/* Draws a new master secret and sets the rotation period (0: the default).
 * Called by tls_init; calling it again invalidates every ticket issued.
 * Returns 0 or -errno (no randomness). */
int tls_ticket_init(unsigned period_s);

/* The rotation period in seconds. */
unsigned tls_ticket_period(void);

/* Replaces the clock (tests); NULL restores time(). */
void tls_ticket_set_clock(time_t (*now)(void));

/* wolfSSL's SessionTicketEncCb, installed on every WOLFSSL_CTX of a store
 * (internal to src/tls). enc: seal ticket in place and fill key_name, iv,
 * mac; otherwise open it. Returns WOLFSSL_TICKET_RET_*. */
int tls_ticket_cb(WOLFSSL *ssl, unsigned char key_name[16], unsigned char iv[16],
		  unsigned char mac[32], int enc, unsigned char *ticket, int in_len,
		  int *out_len, void *arg);

#endif
