/* snapshot-t.h - the compiled, immutable routing configuration shared by shards.
 *
 * A snapshot is built by the control thread with the builder API in
 * snapshot.h, frozen, then published to every shard. Shards only read it.
 * All memory of one snapshot (strings, tables, endpoints) is owned by the
 * snapshot and freed by snapshot_free. */
#ifndef RINGRESS_SNAPSHOT_T_H
#define RINGRESS_SNAPSHOT_T_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* One pod endpoint: an address and port to connect to. */
struct snap_endpoint {
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} addr;
	socklen_t addrlen;
	char text[64]; /* "10.0.0.1:8080" or "[::1]:8080", for logs and headers */
};

/* Load-balancing algorithms (--load-balance, annotation load-balance). */
enum snap_lb {
	SNAP_LB_DEFAULT = 0, /* the --load-balance flag */
	SNAP_LB_ROUND_ROBIN,
	SNAP_LB_EWMA,          /* power of two choices on latency x load */
	SNAP_LB_LEAST_REQUEST, /* power of two choices on requests in flight */
	SNAP_LB_HASH,          /* consistent hashing (upstream-hash-by) */
};

/* What upstream-hash-by hashes. */
enum snap_hash_src {
	SNAP_HASH_REMOTE_ADDR = 0, /* $remote_addr */
	SNAP_HASH_HEADER,          /* $http_x_name: header x-name */
	SNAP_HASH_COOKIE,          /* $cookie_name */
	SNAP_HASH_URI,             /* $request_uri */
};

/* Per-backend settings from Ingress annotations; 0 means "the flag". */
struct snap_backend_opts {
	uint8_t lb;       /* enum snap_lb */
	uint8_t hash_src; /* enum snap_hash_src, with SNAP_LB_HASH */
	char hash_key[64]; /* header (lower case, '-' separated) or cookie name */
	uint32_t connect_timeout_ms, read_timeout_ms, send_timeout_ms;
};

/* A point of a backend's consistent-hash ring. */
struct snap_ring_point {
	uint32_t hash;
	uint32_t endpoint; /* index in endpoints */
};

/* A backend: one Service port of one namespace, with its ready endpoints. */
struct snap_backend {
	const char *name; /* "namespace/service:port", for logs */
	uint32_t id;      /* index in snapshot->backends */
	uint32_t nendpoints;
	struct snap_endpoint *endpoints; /* nendpoints entries, stable order */
	struct snap_backend_opts opts;
	uint32_t nring; /* SNAP_LB_HASH only: points sorted by hash */
	struct snap_ring_point *ring;
};

enum snap_path_type {
	SNAP_PATH_PREFIX = 0, /* Prefix and ImplementationSpecific */
	SNAP_PATH_EXACT = 1,
};

/* One path rule of a host. */
struct snap_path {
	const char *path; /* normalised: no trailing '/' for Prefix except "/" */
	uint32_t len;
	uint8_t type; /* enum snap_path_type */
	uint32_t backend; /* id: index in snapshot->backends */
};

/* The path rules of one host, sorted so that the first match is the best:
 * longer paths first, Exact before Prefix at equal length. */
#define SNAP_HOST_SSL_REDIRECT 1u /* plain HTTP gets 308 to https */

struct snap_host {
	const char *name; /* lower case; "*.foo.com" for wildcards; "" for any */
	uint32_t len;
	uint32_t flags; /* SNAP_HOST_* */
	uint32_t npaths;
	struct snap_path *paths;
};

/* One certificate of Ingress spec.tls with the hosts it serves. */
struct snap_tls {
	const char *name; /* "namespace/secret", for logs */
	const char *const *hosts;
	uint32_t nhosts;
	const char *cert; /* PEM, chain included */
	uint32_t cert_len;
	const char *key;
	uint32_t key_len;
};

/* A frozen snapshot. Fields after `refs` never change once published. */
struct snapshot {
	_Atomic uint32_t refs;  /* owners: the control thread and each shard */
	uint64_t generation;    /* increasing; 1 for the first configuration */

	uint32_t nbackends;
	struct snap_backend *backends;

	/* Exact host names: open-addressing hash table of hosts_cap slots
	 * (power of two), NULL where empty. */
	uint32_t hosts_cap;
	struct snap_host **hosts;
	/* Wildcard hosts, keyed by the suffix after "*." (e.g. "foo.com"). */
	uint32_t wild_cap;
	struct snap_host **wild;
	/* Rules without a host; NULL when there are none. */
	struct snap_host *any_host;
	/* Catch-all backend when nothing matches; NULL means 404. */
	const struct snap_backend *default_backend;

	/* Certificates from Ingress spec.tls, as PEM; compiled by the TLS layer
	 * into tls_ctx before the snapshot is published. Like the routes, an
	 * endpoint-only rebuild shares them, tls_ctx included: it is set once
	 * per set of routes and freed with them. */
	uint32_t ntls;
	struct snap_tls *tls;
	void *tls_ctx;                   /* freed with tls_ctx_free, with the routes */
	void (*tls_ctx_free)(void *ctx);

	void *arena;  /* private to snapshot.c: backends and endpoints */
	void *shared; /* private to snapshot.c: routes, shared by endpoint-only rebuilds */
};

#endif
