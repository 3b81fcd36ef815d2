/* config-t.h - data-plane settings shared read-only by all shards. */
#ifndef RINGRESS_CONFIG_T_H
#define RINGRESS_CONFIG_T_H

#include <stdint.h>

struct core_config {
	const char *bind;      /* listen address, "0.0.0.0" */
	uint16_t http_port;    /* 80 */
	uint16_t admin_port;   /* 10254 */
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
	uint64_t proxy_body_size;              /* 1m; 0 = unlimited */
	uint32_t max_header_size;              /* 32k total request head */
	uint64_t shutdown_timeout_ms;          /* graceful drain bound, 30s */

	uint32_t buf_size;  /* provided buffer size, 16k */
	uint32_t buf_count; /* provided buffers per shard, power of two */
};

#endif
