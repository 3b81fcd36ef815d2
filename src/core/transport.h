/* transport.h - a byte-stream layer between a client socket and the proxy
 * (TLS). Core calls these hooks and never knows what is behind them; the
 * implementation never touches sockets: it reads and writes memory. */
#ifndef RINGRESS_TRANSPORT_H
#define RINGRESS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

struct transport_ops {
	/* New per-connection state for a connection accepted while ctx (the
	 * snapshot's compiled certificates, snapshot->tls) was current.
	 * Returns NULL on failure (the connection is closed). */
	void *(*conn_new)(void *ctx);

	/* Feeds len received bytes. Stores in *used how many were taken (the
	 * rest must be offered again) and writes up to cap bytes of
	 * application data to out. Returns the bytes written to out (0 when
	 * none is ready yet, e.g. during the handshake), or -errno on a fatal
	 * error (bad handshake, bad record, alert): the connection closes. */
	int (*recv)(void *tc, const char *in, size_t len, size_t *used, char *out, size_t cap);

	/* Encrypts len bytes of application data into the pending output.
	 * Returns len, or -errno. */
	int (*send)(void *tc, const char *in, size_t len);

	/* Moves up to cap bytes of pending output (handshake messages,
	 * records, alerts) to out. Returns the bytes moved; with out NULL,
	 * moves nothing and returns how many wait. */
	size_t (*pending)(void *tc, char *out, size_t cap);

	/* True once the handshake is complete. */
	bool (*established)(void *tc);

	/* Queues a close_notify alert into the pending output. */
	void (*shutdown)(void *tc);

	/* Frees per-connection state. */
	void (*conn_free)(void *tc);

	/* Frees a snapshot's compiled certificates (snapshot->tls). */
	void (*ctx_free)(void *ctx);

	/* Releases what the transport keeps per thread (NULL: nothing); each
	 * shard thread calls it before it ends. */
	void (*thread_exit)(void);
};

#endif
