/* router.c - request path normalisation and host/path matching.
 *
 * Both functions run on the shards' hot path: they never allocate, and
 * compare host names case-insensitively in place. */
#include "core/router.h"

#include "core/http1.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define FNV_SEED 2166136261u

/* ASCII lower case, without locale. */
static inline unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* FNV-1a of the lower-case form of s; must match snapshot.c's table keys. */
static uint32_t hash_lower(const char *s, size_t len)
{
	uint32_t h = FNV_SEED;

	for (size_t i = 0; i < len; i++) {
		h ^= lower((unsigned char)s[i]);
		h *= 16777619u;
	}
	return h;
}

/* Compares s (any case) with the lower-case name. Returns true when equal. */
static bool eq_lower(const char *s, const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (lower((unsigned char)s[i]) != (unsigned char)name[i])
			return false;
	return true;
}

/* Value of a hex digit, or -1. */
static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* RFC 3986 unreserved: ALPHA DIGIT - . _ ~ */
static bool is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Normalises the path of a request target; see router.h. */
int router_normalize_path(const char *in, size_t len, char *out, size_t cap)
{
	size_t i, end, o = 0;
	bool trailing = false;

	if (len > INT_MAX || cap > INT_MAX)
		return -EINVAL;
	i = http1_target_origin(in, len, NULL, NULL);
	if (i) {
		if (i == len || in[i] != '/') {
			if (!cap)
				return -ENOSPC;
			out[0] = '/';
			return 1;
		}
	}
	if (i >= len || in[i] != '/')
		return -EINVAL;
	for (end = i; end < len; end++)
		if (in[end] == '?' || in[end] == '#')
			break;

	while (i < end) {
		/* in[i] == '/': skip the run of slashes */
		while (i < end && in[i] == '/')
			i++;
		if (i == end) {
			trailing = true;
			break;
		}
		size_t seg = o; /* where this segment's '/' goes */
		if (o >= cap)
			return -ENOSPC;
		out[o++] = '/';
		for (; i < end && in[i] != '/'; i++) {
			unsigned char c = (unsigned char)in[i];
			if (c == '%') {
				int hi, lo;
				if (end - i < 3 || (hi = hexval((unsigned char)in[i + 1])) < 0 ||
				    (lo = hexval((unsigned char)in[i + 2])) < 0)
					return -EINVAL;
				i += 2;
				c = (unsigned char)(hi << 4 | lo);
				if (!is_unreserved(c)) {
					static const char hex[] = "0123456789ABCDEF";
					if (cap - o < 3)
						return -ENOSPC;
					out[o++] = '%';
					out[o++] = hex[c >> 4];
					out[o++] = hex[c & 15];
					continue;
				}
			} else if (c <= 0x20 || c == 0x7f) {
				return -EINVAL;
			}
			if (o >= cap)
				return -ENOSPC;
			out[o++] = (char)c;
		}
		size_t slen = o - seg - 1;
		trailing = false;
		if (slen == 1 && out[seg + 1] == '.') {
			o = seg;
			trailing = true;
		} else if (slen == 2 && out[seg + 1] == '.' && out[seg + 2] == '.') {
			if (seg == 0)
				return -EINVAL; /* above the root */
			o = seg; /* drop the previous segment; out[0] is '/' */
			do
				o--;
			while (out[o] != '/');
			trailing = true;
		}
	}
	if (o == 0 || trailing) {
		if (o >= cap)
			return -ENOSPC;
		out[o++] = '/';
	}
	return (int)o;
}

/* Looks a name up in an open-addressing host table. skip is 2 for the
 * wildcard table, whose keys are the names without their "*." */
static const struct snap_host *host_lookup(struct snap_host *const *tab, uint32_t cap,
					   const char *name, size_t len, uint32_t skip)
{
	if (!cap)
		return NULL;
	uint32_t mask = cap - 1;
	for (uint32_t j = hash_lower(name, len) & mask; tab[j]; j = (j + 1) & mask) {
		const struct snap_host *h = tab[j];
		if (h->len - skip == len && eq_lower(name, h->name + skip, len))
			return h;
	}
	return NULL;
}

size_t router_host_name_len(const char *host, size_t len)
{
	if (!host || !len)
		return 0;
	if (host[0] == '[') {
		const char *rb = memchr(host, ']', len);
		return rb ? (size_t)(rb - host) + 1 : len;
	}
	const char *colon = memchr(host, ':', len);
	return colon ? (size_t)(colon - host) : len;
}

const struct snap_host *router_host(const struct snapshot *s, const char *host, size_t hostlen)
{
	const struct snap_host *h = NULL;
	size_t n = router_host_name_len(host, hostlen);

	if (n && host[n - 1] == '.')
		n--;
	if (n) {
		h = host_lookup(s->hosts, s->hosts_cap, host, n, 0);
		if (!h) {
			const char *dot = memchr(host, '.', n);
			if (dot && dot > host && (size_t)(dot - host) + 1 < n) {
				size_t off = (size_t)(dot - host) + 1;
				h = host_lookup(s->wild, s->wild_cap, host + off, n - off, 2);
			}
		}
	}
	return h ? h : s->any_host;
}

/* Finds the backend for a host and a normalised path; see router.h. */
const struct snap_backend *router_match(const struct snapshot *s, const char *host,
					size_t hostlen, const char *path, size_t pathlen)
{
	const struct snap_host *h = router_host(s, host, hostlen);
	if (!h)
		return s->default_backend;

	for (uint32_t i = 0; i < h->npaths; i++) {
		const struct snap_path *p = &h->paths[i];
		if (p->len > pathlen)
			continue;
		if (p->type == SNAP_PATH_EXACT) {
			if (p->len == pathlen && !memcmp(p->path, path, pathlen))
				return &s->backends[p->backend];
		} else if (p->len == 1 || (!memcmp(p->path, path, p->len) &&
					   (p->len == pathlen || path[p->len] == '/'))) {
			return &s->backends[p->backend];
		}
	}
	return s->default_backend;
}
