/* config-t.h - data-plane settings shared read-only by all shards. */
#ifndef RINGRESS_CONFIG_T_H
#define RINGRESS_CONFIG_T_H

#include "core/transport.h"

#include <stdint.h>

#define NEXT_UPSTREAM_ERROR (1u << 0)   /* connect error, reset, close */
#define NEXT_UPSTREAM_TIMEOUT (1u << 1) /* connect or read timeout */
#define NEXT_UPSTREAM_502 (1u << 2)
#define NEXT_UPSTREAM_503 (1u << 3)
#define NEXT_UPSTREAM_504 (1u << 4)

enum splice_mode {
	SPLICE_MODE_OFF = 0, /* provided buffers, recv + sendmsg */
	SPLICE_MODE_POLL,    /* splice(2) from the shard, driven by io_uring poll */
	SPLICE_MODE_URING,   /* IORING_OP_SPLICE (runs in io-wq, pinned to the shard's CPU) */
};

struct core_config {
	const char *bind;      /* listen address, "0.0.0.0" */
	uint16_t http_port;    /* 80 */
	uint16_t admin_port;   /* 10254 */
	uint16_t https_port;   /* 443; 0 = no TLS listener */
	const struct transport_ops *tls_ops; /* TLS hooks (src/tls), NULL = none */
	const char *hsts;      /* Strict-Transport-Security value, NULL = none */
	int nshards;           /* number of shard threads */

	uint64_t client_header_timeout_ms;     /* 60s: reading a request head */
	uint64_t client_body_timeout_ms;       /* 60s: between two body reads / client writes */
	uint64_t keepalive_timeout_ms;         /* 75s: idle client connection */
	uint32_t keepalive_requests;           /* 1000 per client connection */
	uint64_t proxy_connect_timeout_ms;     /* 5s */
	uint64_t proxy_read_timeout_ms;        /* 60s between two upstream reads */
	uint64_t proxy_send_timeout_ms;        /* 60s between two upstream writes */
	uint64_t upstream_keepalive_timeout_ms; /* 60s idle upstream connection */
	uint32_t upstream_keepalive_requests;  /* 10000 per upstream connection */
	uint32_t upstream_keepalive_conns;     /* 320 idle upstream connections per shard */
	uint64_t proxy_body_size;              /* 1m; 0 = unlimited */
	uint32_t max_header_size;              /* 32k total request head */
	uint64_t shutdown_timeout_ms;          /* graceful drain bound, 30s */

	uint8_t load_balance;       /* enum snap_lb: round_robin, ewma, least_request */
	uint32_t max_fails;         /* 3: failures in a row before an endpoint is ejected */
	uint64_t fail_timeout_ms;   /* 10s: first ejection, doubled while failing */
	uint32_t next_upstream;     /* NEXT_UPSTREAM_* when to try another endpoint */
	uint32_t next_upstream_tries; /* 3 endpoints at most per request */

	uint8_t splice_mode;        /* SPLICE_MODE_*: how large bodies are forwarded */
	uint64_t splice_threshold;  /* response bodies at least this long are spliced */

	uint32_t batch_wait_usec;   /* 100: longest wait for a batch of completions when busy */
	uint8_t batch_busy_pct;     /* 50: busy from this share of the time on (0: always) */

	uint32_t buf_size;  /* provided buffer size, 16k */
	uint32_t buf_count; /* provided buffers per shard, power of two */
};

#endif
