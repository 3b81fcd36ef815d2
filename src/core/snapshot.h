/* snapshot.h - building, freezing and sharing routing snapshots.
 *
 * The builder runs on the control thread; it allocates freely. A built
 * snapshot starts with one reference owned by the caller. */
#ifndef RINGRESS_SNAPSHOT_H
#define RINGRESS_SNAPSHOT_H

#include "core/snapshot-t.h"

#include <stddef.h>

struct snapshot_builder;

/* Returns a new empty builder, or NULL on allocation failure. */
struct snapshot_builder *snapshot_builder_new(void);

/* Frees a builder that was not (or was) built. NULL is accepted. */
void snapshot_builder_free(struct snapshot_builder *b);

/* Returns the id of the backend called name ("ns/svc:port"), creating it
 * (with no endpoints) on first use; or -ENOMEM. */
int snapshot_add_backend(struct snapshot_builder *b, const char *name);

/* Replaces the endpoints of backend id by a copy of eps[0..n) (an
 * endpoint-only rebuild keeping a backend as it was). Returns 0, -EINVAL or
 * -ENOMEM. */
int snapshot_set_endpoints(struct snapshot_builder *b, int backend,
			   const struct snap_endpoint *eps, uint32_t n);

/* Sets the options of backend id (annotations). Backends with different
 * options must have different names. Returns 0 or -EINVAL. */
int snapshot_set_backend_opts(struct snapshot_builder *b, int backend,
			      const struct snap_backend_opts *o);

/* Hash used for consistent hashing, on the ring and of request keys. */
uint32_t snapshot_hash(const void *p, size_t len, uint32_t seed);

/* Points per endpoint on a consistent-hash ring. */
#define SNAP_RING_POINTS 160

/* Appends an endpoint to backend id. Duplicate addresses are ignored.
 * Returns 0, -EINVAL (bad id or address family) or -ENOMEM. */
int snapshot_add_endpoint(struct snapshot_builder *b, int backend, const struct sockaddr *sa,
			  socklen_t len);

/* Adds a path rule. host NULL or "" means every host; "*.foo.com" is a
 * wildcard of one label; host is matched case-insensitively. path must start
 * with '/'. backend is an id from snapshot_add_backend.
 * The first rule added for a given (host, path, type) wins: a later duplicate
 * returns -EEXIST and changes nothing, so callers add rules oldest first.
 * Returns 0, -EEXIST, -EINVAL (bad host or path) or -ENOMEM. */
int snapshot_add_route(struct snapshot_builder *b, const char *host, const char *path,
		       enum snap_path_type type, int backend);

/* Sets the catch-all backend used when no host or path matches. The first
 * call wins (returns -EEXIST afterwards). */
int snapshot_set_default_backend(struct snapshot_builder *b, int backend);

/* Sets flags (SNAP_HOST_*) on host, which must have routes by the time the
 * snapshot is built. Returns 0, -EINVAL or -ENOMEM. */
int snapshot_set_host_flags(struct snapshot_builder *b, const char *host, uint32_t flags);

/* Adds a certificate (PEM) for hosts, from Secret name ("ns/name").
 * Everything is copied. Returns 0 or -ENOMEM. */
int snapshot_add_tls(struct snapshot_builder *b, const char *name, const char *const *hosts,
		     size_t nhosts, const char *cert, size_t cert_len, const char *key,
		     size_t key_len);

/* Compiles the builder into a frozen snapshot with the given generation and
 * one reference. The builder can be freed afterwards. Returns NULL on
 * allocation failure. */
struct snapshot *snapshot_build(struct snapshot_builder *b, uint64_t generation);

/* An endpoint-only rebuild: a new snapshot with b's backends (the same
 * names, in the same order, as prev's: only endpoints and options may
 * differ) that shares prev's hosts, paths and certificates. b holds no
 * routes. Returns NULL when b's backends do not match prev's (the caller
 * then rebuilds everything) or on allocation failure. */
struct snapshot *snapshot_rebuild_endpoints(const struct snapshot *prev,
					    struct snapshot_builder *b, uint64_t generation);

/* Takes one more reference. */
static inline struct snapshot *snapshot_acquire(struct snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

/* Drops one reference; the last one frees the snapshot. NULL is accepted. */
void snapshot_release(struct snapshot *s);

#endif
