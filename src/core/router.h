/* router.h - request routing against a snapshot (Kubernetes Ingress v1 rules). */
#ifndef RINGRESS_ROUTER_H
#define RINGRESS_ROUTER_H

#include "core/snapshot-t.h"

#include <stddef.h>

/* Normalises the path of a request target for matching: the query string
 * (from '?') and a fragment are dropped, percent-encoded unreserved
 * characters (ALPHA DIGIT - . _ ~) are decoded, other escapes are kept with
 * upper-case hex digits, "." and ".." segments are resolved and runs of '/'
 * are merged. An absolute-form target ("http://h/p") is reduced to its path.
 * Writes at most cap bytes to out (no NUL).
 * Returns the length, -EINVAL for a target that is not a path, climbs above
 * the root or holds a bad escape, or -ENOSPC when out is too small. */
int router_normalize_path(const char *in, size_t len, char *out, size_t cap);

/* Finds the backend for host (the Host header; a ":port" suffix and a
 * trailing dot are ignored, case-insensitive) and a normalised path.
 * Host selection: exact host, else wildcard of one label, else rules
 * without host. Path selection within the chosen host: the longest match,
 * Exact before Prefix of equal length. When nothing matches, the snapshot's
 * default backend. Returns NULL when the answer is 404. A backend with no
 * endpoints means 503 to the caller. */
const struct snap_backend *router_match(const struct snapshot *s, const char *host,
					size_t hostlen, const char *path, size_t pathlen);

/* Length of a Host value without its ":port" (an IPv6 literal keeps its
 * brackets). */
size_t router_host_name_len(const char *host, size_t len);

/* The host entry a request's Host selects (exact, wildcard, then rules
 * without host), or NULL. Same Host handling as router_match. */
const struct snap_host *router_host(const struct snapshot *s, const char *host, size_t hostlen);

#endif
