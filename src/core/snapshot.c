/* snapshot.c - the snapshot builder, compilation into one arena, refcounting.
 *
 * The builder keeps growable arrays and hash tables on the heap (control
 * thread only). snapshot_build copies everything into a bump arena made of
 * a few large chunks, so that a frozen snapshot is freed in one go by its
 * last snapshot_release. */
#include "core/snapshot.h"
#include "core/router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOST_MAX 253
#define LABEL_MAX 63
#define ARENA_MIN_CHUNK (64u * 1024)
#define ARENA_MAX_CHUNK (4u * 1024 * 1024)

/* ---- arena ------------------------------------------------------------ */

struct arena_chunk {
	struct arena_chunk *next; /* older chunk */
	size_t used;
	size_t cap;
	alignas(16) unsigned char data[];
};

struct arena {
	struct arena_chunk *head; /* newest chunk */
	size_t next_cap;
};

/* Returns size bytes aligned on 16 from the arena, or NULL. */
static void *arena_alloc(struct arena *a, size_t size)
{
	struct arena_chunk *c = a->head;

	size = (size + 15) & ~(size_t)15;
	if (!c || c->cap - c->used < size) {
		size_t cap = a->next_cap ? a->next_cap : ARENA_MIN_CHUNK;
		if (cap < size)
			cap = size;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = a->head;
		c->used = 0;
		c->cap = cap;
		a->head = c;
		if (a->next_cap < ARENA_MAX_CHUNK)
			a->next_cap = a->next_cap ? a->next_cap * 2 : ARENA_MIN_CHUNK * 2;
	}
	void *p = c->data + c->used;
	c->used += size;
	return p;
}

/* Returns zeroed memory from the arena, or NULL. */
static void *arena_zalloc(struct arena *a, size_t size)
{
	void *p = arena_alloc(a, size);
	if (p)
		memset(p, 0, size);
	return p;
}

/* Copies len bytes of s plus a NUL into the arena, or returns NULL. */
static char *arena_strndup(struct arena *a, const char *s, size_t len)
{
	char *p = arena_alloc(a, len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/* Frees every chunk of the list starting at head. */
static void arena_free_chunks(struct arena_chunk *head)
{
	while (head) {
		struct arena_chunk *next = head->next;
		free(head);
		head = next;
	}
}

/* ---- builder ----------------------------------------------------------- */

struct bld_backend {
	char *name;
	uint32_t len;
	uint32_t hash;
	struct snap_backend_opts opts;
	uint32_t neps, epcap;
	struct snap_endpoint *eps;
};

struct bld_path {
	char *path;
	uint32_t len;
	uint8_t type;
	uint32_t backend;
};

struct bld_host {
	char *name; /* lower case, "*.x" for wildcards, "" for any host */
	uint32_t len;
	uint32_t hash;
	uint32_t flags;
	uint32_t npaths, pathcap;
	struct bld_path *paths;
};

/* A route key: the host index and the path index within that host. */
struct bld_route {
	uint32_t host; /* UINT32_MAX when the slot is empty */
	uint32_t path;
	uint32_t hash;
};

struct snapshot_builder {
	struct bld_backend *backends;
	uint32_t nbackends, backcap;
	uint32_t *backend_tab; /* index + 1, 0 when empty */
	uint32_t backend_tabcap;

	struct bld_host *hosts;
	uint32_t nhosts, hostcap;
	uint32_t *host_tab; /* index + 1, 0 when empty */
	uint32_t host_tabcap;

	struct bld_route *routes;
	uint32_t nroutes, route_tabcap;

	int default_backend; /* -1 when unset */

	struct snap_tls *tls; /* malloc'd copies until built */
	uint32_t ntls, tlscap;
};

/* FNV-1a over len bytes, seeded so that callers can chain. */
static uint32_t fnv1a(uint32_t h, const void *p, size_t len)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= 16777619u;
	}
	return h;
}

#define FNV_SEED 2166136261u

/* Grows *arr (of elsz-byte elements) so that it holds need elements.
 * Returns 0 or -ENOMEM. */
static int array_reserve(void **arr, uint32_t *cap, uint32_t need, size_t elsz)
{
	if (need <= *cap)
		return 0;
	uint32_t n = *cap ? *cap : 4;
	while (n < need)
		n *= 2;
	void *p = realloc(*arr, (size_t)n * elsz);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

/* Rebuilds an index table (values index + 1) of newcap slots, using the
 * hashes read by hash_of. Returns 0 or -ENOMEM. */
static int index_rehash(uint32_t **tab, uint32_t *tabcap, uint32_t newcap, uint32_t n,
			uint32_t (*hash_of)(const struct snapshot_builder *, uint32_t),
			const struct snapshot_builder *b)
{
	uint32_t *t = calloc(newcap, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t j = hash_of(b, i) & (newcap - 1);
		while (t[j])
			j = (j + 1) & (newcap - 1);
		t[j] = i + 1;
	}
	free(*tab);
	*tab = t;
	*tabcap = newcap;
	return 0;
}

static uint32_t backend_hash_of(const struct snapshot_builder *b, uint32_t i)
{
	return b->backends[i].hash;
}

static uint32_t host_hash_of(const struct snapshot_builder *b, uint32_t i)
{
	return b->hosts[i].hash;
}

/* Returns a new empty builder, or NULL. */
struct snapshot_builder *snapshot_builder_new(void)
{
	struct snapshot_builder *b = calloc(1, sizeof(*b));
	if (b)
		b->default_backend = -1;
	return b;
}

/* Frees the builder and everything it owns. */
void snapshot_builder_free(struct snapshot_builder *b)
{
	if (!b)
		return;
	for (uint32_t i = 0; i < b->nbackends; i++) {
		free(b->backends[i].name);
		free(b->backends[i].eps);
	}
	for (uint32_t i = 0; i < b->nhosts; i++) {
		for (uint32_t j = 0; j < b->hosts[i].npaths; j++)
			free(b->hosts[i].paths[j].path);
		free(b->hosts[i].paths);
		free(b->hosts[i].name);
	}
	for (uint32_t i = 0; i < b->ntls; i++) {
		struct snap_tls *t = &b->tls[i];
		for (uint32_t k = 0; k < t->nhosts; k++)
			free((char *)t->hosts[k]);
		free((void *)t->hosts);
		free((char *)t->name);
		free((char *)t->cert);
		free((char *)t->key);
	}
	free(b->tls);
	free(b->backends);
	free(b->backend_tab);
	free(b->hosts);
	free(b->host_tab);
	free(b->routes);
	free(b);
}

/* Returns the id of backend name, creating it on first use; or -ENOMEM. */
int snapshot_add_backend(struct snapshot_builder *b, const char *name)
{
	size_t len = strlen(name);
	uint32_t h = fnv1a(FNV_SEED, name, len);

	if (b->backend_tabcap) {
		uint32_t mask = b->backend_tabcap - 1;
		for (uint32_t j = h & mask; b->backend_tab[j]; j = (j + 1) & mask) {
			struct bld_backend *be = &b->backends[b->backend_tab[j] - 1];
			if (be->hash == h && be->len == len && !memcmp(be->name, name, len))
				return (int)(b->backend_tab[j] - 1);
		}
	}
	if (b->nbackends >= INT32_MAX - 1 || len > UINT32_MAX)
		return -ENOMEM;
	if (array_reserve((void **)&b->backends, &b->backcap, b->nbackends + 1,
			  sizeof(*b->backends)))
		return -ENOMEM;
	if ((b->nbackends + 1) * 2 > b->backend_tabcap) {
		uint32_t cap = b->backend_tabcap ? b->backend_tabcap * 2 : 16;
		if (index_rehash(&b->backend_tab, &b->backend_tabcap, cap, b->nbackends,
				 backend_hash_of, b))
			return -ENOMEM;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	uint32_t id = b->nbackends++;
	b->backends[id] = (struct bld_backend){ .name = copy, .len = (uint32_t)len, .hash = h };
	uint32_t mask = b->backend_tabcap - 1;
	uint32_t j = h & mask;
	while (b->backend_tab[j])
		j = (j + 1) & mask;
	b->backend_tab[j] = id + 1;
	return (int)id;
}

int snapshot_set_endpoints(struct snapshot_builder *b, int backend,
			   const struct snap_endpoint *eps, uint32_t n)
{
	if (backend < 0 || (uint32_t)backend >= b->nbackends)
		return -EINVAL;
	struct bld_backend *be = &b->backends[backend];
	if (array_reserve((void **)&be->eps, &be->epcap, n ? n : 1, sizeof(*be->eps)))
		return -ENOMEM;
	if (n)
		memcpy(be->eps, eps, (size_t)n * sizeof(*eps));
	be->neps = n;
	return 0;
}

int snapshot_set_backend_opts(struct snapshot_builder *b, int backend,
			      const struct snap_backend_opts *o)
{
	if (backend < 0 || (uint32_t)backend >= b->nbackends || !o || o->lb > SNAP_LB_HASH)
		return -EINVAL;
	b->backends[backend].opts = *o;
	b->backends[backend].opts.hash_key[sizeof(o->hash_key) - 1] = 0;
	return 0;
}

/* murmur3's finaliser over FNV-1a: fast, and well spread for ring points. */
uint32_t snapshot_hash(const void *p, size_t len, uint32_t seed)
{
	uint32_t h = fnv1a(FNV_SEED ^ seed, p, len);
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static int ring_cmp(const void *a, const void *b)
{
	const struct snap_ring_point *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->endpoint < y->endpoint ? -1 : x->endpoint > y->endpoint;
}

/* Builds the consistent-hash ring of a backend: SNAP_RING_POINTS points per
 * endpoint, placed by hashing the endpoint's address text, so that adding or
 * removing one endpoint only moves the keys of its own points. */
static int ring_build(struct arena *a, struct snap_backend *sb)
{
	sb->nring = sb->nendpoints * SNAP_RING_POINTS;
	sb->ring = arena_alloc(a, (size_t)sb->nring * sizeof(*sb->ring) + 1);
	if (!sb->ring)
		return -ENOMEM;
	for (uint32_t e = 0; e < sb->nendpoints; e++) {
		const char *t = sb->endpoints[e].text;
		for (uint32_t i = 0; i < SNAP_RING_POINTS; i++) {
			struct snap_ring_point *pt = &sb->ring[e * SNAP_RING_POINTS + i];
			pt->hash = snapshot_hash(t, strlen(t), i * 0x9e3779b9u);
			pt->endpoint = e;
		}
	}
	if (sb->nring > 1)
		qsort(sb->ring, sb->nring, sizeof(*sb->ring), ring_cmp);
	return 0;
}

/* Fills ep->text from ep->addr. */
static void endpoint_format(struct snap_endpoint *ep)
{
	char buf[INET6_ADDRSTRLEN];

	if (ep->addr.sa.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->addr.in.sin_addr, buf, sizeof(buf));
		snprintf(ep->text, sizeof(ep->text), "%s:%u", buf,
			 (unsigned)ntohs(ep->addr.in.sin_port));
	} else {
		inet_ntop(AF_INET6, &ep->addr.in6.sin6_addr, buf, sizeof(buf));
		snprintf(ep->text, sizeof(ep->text), "[%s]:%u", buf,
			 (unsigned)ntohs(ep->addr.in6.sin6_port));
	}
}

/* Appends an endpoint to a backend unless the same address is present. */
int snapshot_add_endpoint(struct snapshot_builder *b, int backend, const struct sockaddr *sa,
			  socklen_t len)
{
	struct snap_endpoint ep;

	if (backend < 0 || (uint32_t)backend >= b->nbackends || !sa)
		return -EINVAL;
	memset(&ep, 0, sizeof(ep));
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		ep.addr.in.sin_family = AF_INET;
		ep.addr.in.sin_port = in->sin_port;
		ep.addr.in.sin_addr = in->sin_addr;
		ep.addrlen = sizeof(struct sockaddr_in);
	} else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		ep.addr.in6.sin6_family = AF_INET6;
		ep.addr.in6.sin6_port = in6->sin6_port;
		ep.addr.in6.sin6_addr = in6->sin6_addr;
		ep.addr.in6.sin6_scope_id = in6->sin6_scope_id;
		ep.addrlen = sizeof(struct sockaddr_in6);
	} else {
		return -EINVAL;
	}

	struct bld_backend *be = &b->backends[backend];
	for (uint32_t i = 0; i < be->neps; i++)
		if (be->eps[i].addrlen == ep.addrlen &&
		    !memcmp(&be->eps[i].addr, &ep.addr, sizeof(ep.addr)))
			return 0;
	if (array_reserve((void **)&be->eps, &be->epcap, be->neps + 1, sizeof(*be->eps)))
		return -ENOMEM;
	endpoint_format(&ep);
	be->eps[be->neps++] = ep;
	return 0;
}

/* Validates host and writes its lower-case form (without a trailing dot)
 * to out (HOST_MAX + 1 bytes). Returns the length or -EINVAL. */
static int host_canon(const char *host, char *out)
{
	size_t len = strlen(host);
	size_t i = 0, o = 0, label = 0;

	if (len && host[len - 1] == '.')
		len--;
	if (!len || len > HOST_MAX)
		return -EINVAL;
	if (host[0] == '*') {
		if (len < 3 || host[1] != '.')
			return -EINVAL;
		out[o++] = '*';
		out[o++] = '.';
		i = 2;
	}
	for (; i < len; i++) {
		char c = host[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '.') {
			if (!label)
				return -EINVAL;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			   c == '_') {
			if (++label > LABEL_MAX)
				return -EINVAL;
		} else {
			return -EINVAL; /* '*' elsewhere, ':', '/', spaces, ... */
		}
		out[o++] = c;
	}
	if (!label)
		return -EINVAL;
	return (int)o;
}

/* Returns the index of host name (canonical), creating it; or -ENOMEM. */
static int builder_host(struct snapshot_builder *b, const char *name, uint32_t len)
{
	uint32_t h = fnv1a(FNV_SEED, name, len);

	if (b->host_tabcap) {
		uint32_t mask = b->host_tabcap - 1;
		for (uint32_t j = h & mask; b->host_tab[j]; j = (j + 1) & mask) {
			struct bld_host *bh = &b->hosts[b->host_tab[j] - 1];
			if (bh->hash == h && bh->len == len && !memcmp(bh->name, name, len))
				return (int)(b->host_tab[j] - 1);
		}
	}
	if (b->nhosts >= INT32_MAX - 1)
		return -ENOMEM;
	if (array_reserve((void **)&b->hosts, &b->hostcap, b->nhosts + 1, sizeof(*b->hosts)))
		return -ENOMEM;
	if ((b->nhosts + 1) * 2 > b->host_tabcap) {
		uint32_t cap = b->host_tabcap ? b->host_tabcap * 2 : 16;
		if (index_rehash(&b->host_tab, &b->host_tabcap, cap, b->nhosts, host_hash_of, b))
			return -ENOMEM;
	}
	char *copy = strndup(name, len);
	if (!copy)
		return -ENOMEM;
	uint32_t id = b->nhosts++;
	b->hosts[id] = (struct bld_host){ .name = copy, .len = len, .hash = h };
	uint32_t mask = b->host_tabcap - 1;
	uint32_t j = h & mask;
	while (b->host_tab[j])
		j = (j + 1) & mask;
	b->host_tab[j] = id + 1;
	return (int)id;
}

int snapshot_set_host_flags(struct snapshot_builder *b, const char *host, uint32_t flags)
{
	char name[HOST_MAX + 1];
	int hlen = host && *host ? host_canon(host, name) : -EINVAL;

	if (hlen < 0)
		return hlen;
	int hi = builder_host(b, name, (uint32_t)hlen);
	if (hi < 0)
		return hi;
	b->hosts[hi].flags |= flags;
	return 0;
}

static char *memdup0(const char *p, size_t n)
{
	char *c = malloc(n + 1);
	if (c) {
		memcpy(c, p, n);
		c[n] = 0;
	}
	return c;
}

int snapshot_add_tls(struct snapshot_builder *b, const char *name, const char *const *hosts,
		     size_t nhosts, const char *cert, size_t cert_len, const char *key,
		     size_t key_len)
{
	if (array_reserve((void **)&b->tls, &b->tlscap, b->ntls + 1, sizeof(*b->tls)))
		return -ENOMEM;
	struct snap_tls *t = &b->tls[b->ntls];
	memset(t, 0, sizeof(*t));
	const char **hs = calloc(nhosts ? nhosts : 1, sizeof(*hs));
	t->hosts = hs;
	t->name = strdup(name);
	t->cert = memdup0(cert, cert_len);
	t->key = memdup0(key, key_len);
	t->cert_len = (uint32_t)cert_len;
	t->key_len = (uint32_t)key_len;
	b->ntls++; /* freed with the builder even when incomplete */
	if (!hs || !t->name || !t->cert || !t->key)
		return -ENOMEM;
	for (size_t i = 0; i < nhosts; i++) {
		if (!(hs[i] = strdup(hosts[i])))
			return -ENOMEM;
		t->nhosts++;
	}
	return 0;
}

/* Hash of a route key. */
static uint32_t route_hash(uint32_t host, const char *path, uint32_t len, uint8_t type)
{
	uint32_t h = fnv1a(FNV_SEED, &host, sizeof(host));
	h = fnv1a(h, &type, 1);
	return fnv1a(h, path, len);
}

/* Doubles the route set. Returns 0 or -ENOMEM. */
static int routes_grow(struct snapshot_builder *b)
{
	uint32_t cap = b->route_tabcap ? b->route_tabcap * 2 : 64;
	struct bld_route *t = malloc((size_t)cap * sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < cap; i++)
		t[i].host = UINT32_MAX;
	for (uint32_t i = 0; i < b->route_tabcap; i++) {
		if (b->routes[i].host == UINT32_MAX)
			continue;
		uint32_t j = b->routes[i].hash & (cap - 1);
		while (t[j].host != UINT32_MAX)
			j = (j + 1) & (cap - 1);
		t[j] = b->routes[i];
	}
	free(b->routes);
	b->routes = t;
	b->route_tabcap = cap;
	return 0;
}

/* Normalises a rule path into a malloc'ed string. Returns its length or
 * -EINVAL / -ENOMEM. */
static int rule_path_canon(const char *path, enum snap_path_type type, char **out)
{
	size_t len = strlen(path);

	if (!len || path[0] != '/' || memchr(path, '?', len) || memchr(path, '#', len))
		return -EINVAL;
	if (len > INT32_MAX - 2)
		return -EINVAL;
	char *buf = malloc(len + 2);
	if (!buf)
		return -ENOMEM;
	int n = router_normalize_path(path, len, buf, len + 1);
	if (n < 0) {
		free(buf);
		return -EINVAL;
	}
	if (type == SNAP_PATH_PREFIX)
		while (n > 1 && buf[n - 1] == '/')
			n--;
	buf[n] = '\0';
	*out = buf;
	return n;
}

/* Adds a path rule; the first (host, path, type) wins. */
int snapshot_add_route(struct snapshot_builder *b, const char *host, const char *path,
		       enum snap_path_type type, int backend)
{
	char name[HOST_MAX + 1];
	int hlen = 0;
	char *p;
	int err;

	if (backend < 0 || (uint32_t)backend >= b->nbackends || !path)
		return -EINVAL;
	if (type != SNAP_PATH_PREFIX && type != SNAP_PATH_EXACT)
		return -EINVAL;
	if (host && *host) {
		hlen = host_canon(host, name);
		if (hlen < 0)
			return hlen;
	}
	name[hlen] = '\0';
	int plen = rule_path_canon(path, type, &p);
	if (plen < 0)
		return plen;

	int hi = builder_host(b, name, (uint32_t)hlen);
	if (hi < 0) {
		err = hi;
		goto err_path;
	}
	uint32_t rh = route_hash((uint32_t)hi, p, (uint32_t)plen, (uint8_t)type);
	struct bld_host *bh = &b->hosts[hi];
	if (b->route_tabcap) {
		uint32_t mask = b->route_tabcap - 1;
		for (uint32_t j = rh & mask; b->routes[j].host != UINT32_MAX;
		     j = (j + 1) & mask) {
			struct bld_route *r = &b->routes[j];
			if (r->hash != rh || r->host != (uint32_t)hi)
				continue;
			struct bld_path *bp = &bh->paths[r->path];
			if (bp->type == type && bp->len == (uint32_t)plen &&
			    !memcmp(bp->path, p, (size_t)plen)) {
				err = -EEXIST;
				goto err_path;
			}
		}
	}
	if ((b->nroutes + 1) * 2 > b->route_tabcap && routes_grow(b)) {
		err = -ENOMEM;
		goto err_path;
	}
	if (array_reserve((void **)&bh->paths, &bh->pathcap, bh->npaths + 1,
			  sizeof(*bh->paths))) {
		err = -ENOMEM;
		goto err_path;
	}
	uint32_t pi = bh->npaths++;
	bh->paths[pi] = (struct bld_path){ .path = p,
					   .len = (uint32_t)plen,
					   .type = (uint8_t)type,
					   .backend = (uint32_t)backend };
	uint32_t mask = b->route_tabcap - 1;
	uint32_t j = rh & mask;
	while (b->routes[j].host != UINT32_MAX)
		j = (j + 1) & mask;
	b->routes[j] = (struct bld_route){ .host = (uint32_t)hi, .path = pi, .hash = rh };
	b->nroutes++;
	return 0;

err_path:
	free(p);
	return err;
}

/* Sets the catch-all backend; the first call wins. */
int snapshot_set_default_backend(struct snapshot_builder *b, int backend)
{
	if (backend < 0 || (uint32_t)backend >= b->nbackends)
		return -EINVAL;
	if (b->default_backend >= 0)
		return -EEXIST;
	b->default_backend = backend;
	return 0;
}

/* ---- build ------------------------------------------------------------- */

/* Orders paths so that the first match is the best: longer first, Exact
 * before Prefix at equal length, then bytes for a stable result. */
static int path_cmp(const void *a, const void *b)
{
	const struct snap_path *x = a, *y = b;

	if (x->len != y->len)
		return x->len > y->len ? -1 : 1;
	if (x->type != y->type)
		return x->type == SNAP_PATH_EXACT ? -1 : 1;
	return memcmp(x->path, y->path, x->len);
}

/* Returns the power of two at least twice n (0 when n is 0). */
static uint32_t table_cap(uint32_t n)
{
	uint32_t cap = 8;

	if (!n)
		return 0;
	while (cap < n * 2)
		cap *= 2;
	return cap;
}

/* Copies one builder host into the arena. Returns NULL on failure. */
static struct snap_host *build_host(struct arena *a, const struct bld_host *bh)
{
	struct snap_host *sh = arena_zalloc(a, sizeof(*sh));

	if (!sh)
		return NULL;
	sh->name = arena_strndup(a, bh->name, bh->len);
	sh->len = bh->len;
	sh->flags = bh->flags;
	sh->npaths = bh->npaths;
	sh->paths = arena_zalloc(a, (size_t)bh->npaths * sizeof(*sh->paths) + 1);
	if (!sh->name || !sh->paths)
		return NULL;
	for (uint32_t i = 0; i < bh->npaths; i++) {
		const struct bld_path *bp = &bh->paths[i];
		struct snap_path *sp = &sh->paths[i];
		sp->path = arena_strndup(a, bp->path, bp->len);
		if (!sp->path)
			return NULL;
		sp->len = bp->len;
		sp->type = bp->type;
		sp->backend = bp->backend;
	}
	if (sh->npaths > 1)
		qsort(sh->paths, sh->npaths, sizeof(*sh->paths), path_cmp);
	return sh;
}

/* Inserts sh in an open-addressing table keyed by name[skip..]. */
static void table_insert(struct snap_host **tab, uint32_t cap, struct snap_host *sh, uint32_t skip)
{
	uint32_t mask = cap - 1;
	uint32_t j = fnv1a(FNV_SEED, sh->name + skip, sh->len - skip) & mask;

	while (tab[j])
		j = (j + 1) & mask;
	tab[j] = sh;
}

/* Compiles the builder into a frozen snapshot with one reference. */
/* The routing part of a snapshot (host tables, paths, certificates), which
 * an endpoint-only rebuild shares with its predecessor. */
struct routes_share {
	_Atomic uint32_t refs;
	struct arena_chunk *chunks;
};

/* Copies the builder's backends and their endpoints into arena a. */
static struct snap_backend *build_backends(struct arena *a, const struct snapshot_builder *b)
{
	struct snap_backend *bs = arena_zalloc(a, (size_t)b->nbackends * sizeof(*bs) + 1);
	if (!bs)
		return NULL;
	for (uint32_t i = 0; i < b->nbackends; i++) {
		const struct bld_backend *be = &b->backends[i];
		struct snap_backend *sb = &bs[i];
		sb->name = arena_strndup(a, be->name, be->len);
		sb->id = i;
		sb->nendpoints = be->neps;
		sb->endpoints = arena_alloc(a, (size_t)be->neps * sizeof(*be->eps) + 1);
		if (!sb->name || !sb->endpoints)
			return NULL;
		if (be->neps)
			memcpy(sb->endpoints, be->eps, (size_t)be->neps * sizeof(*be->eps));
		sb->opts = be->opts;
		if (sb->opts.lb == SNAP_LB_HASH && ring_build(a, sb) < 0)
			return NULL;
	}
	return bs;
}

struct snapshot *snapshot_build(struct snapshot_builder *b, uint64_t generation)
{
	struct arena a = { 0 }, r = { 0 };
	struct snapshot *s = arena_zalloc(&a, sizeof(*s));
	struct routes_share *share = arena_zalloc(&r, sizeof(*share));

	if (!s || !share)
		goto err_arena;
	s->generation = generation;
	s->nbackends = b->nbackends;
	s->backends = build_backends(&a, b);
	if (!s->backends)
		goto err_arena;

	uint32_t nexact = 0, nwild = 0;
	for (uint32_t i = 0; i < b->nhosts; i++) {
		if (!b->hosts[i].len)
			continue;
		if (b->hosts[i].name[0] == '*')
			nwild++;
		else
			nexact++;
	}
	s->hosts_cap = table_cap(nexact);
	s->wild_cap = table_cap(nwild);
	s->hosts = arena_zalloc(&r, (size_t)s->hosts_cap * sizeof(*s->hosts) + 1);
	s->wild = arena_zalloc(&r, (size_t)s->wild_cap * sizeof(*s->wild) + 1);
	if (!s->hosts || !s->wild)
		goto err_arena;
	for (uint32_t i = 0; i < b->nhosts; i++) {
		const struct bld_host *bh = &b->hosts[i];
		if (!bh->npaths)
			continue;
		struct snap_host *sh = build_host(&r, bh);
		if (!sh)
			goto err_arena;
		if (!bh->len)
			s->any_host = sh;
		else if (bh->name[0] == '*')
			table_insert(s->wild, s->wild_cap, sh, 2);
		else
			table_insert(s->hosts, s->hosts_cap, sh, 0);
	}
	if (b->default_backend >= 0)
		s->default_backend = &s->backends[b->default_backend];
	s->ntls = b->ntls;
	s->tls = arena_zalloc(&r, (size_t)b->ntls * sizeof(*s->tls) + 1);
	if (!s->tls)
		goto err_arena;
	for (uint32_t i = 0; i < b->ntls; i++) {
		const struct snap_tls *bt = &b->tls[i];
		struct snap_tls *t = &s->tls[i];
		const char **hs = arena_zalloc(&r, (size_t)bt->nhosts * sizeof(*hs) + 1);
		t->name = arena_strndup(&r, bt->name, strlen(bt->name));
		t->cert = arena_strndup(&r, bt->cert, bt->cert_len);
		t->key = arena_strndup(&r, bt->key, bt->key_len);
		if (!hs || !t->name || !t->cert || !t->key)
			goto err_arena;
		for (uint32_t k = 0; k < bt->nhosts; k++)
			if (!(hs[k] = arena_strndup(&r, bt->hosts[k], strlen(bt->hosts[k]))))
				goto err_arena;
		t->hosts = hs;
		t->nhosts = bt->nhosts;
		t->cert_len = bt->cert_len;
		t->key_len = bt->key_len;
	}
	atomic_init(&share->refs, 1);
	share->chunks = r.head;
	s->shared = share;
	atomic_init(&s->refs, 1);
	s->arena = a.head;
	return s;

err_arena:
	arena_free_chunks(a.head);
	arena_free_chunks(r.head);
	return NULL;
}

struct snapshot *snapshot_rebuild_endpoints(const struct snapshot *prev,
					    struct snapshot_builder *b, uint64_t generation)
{
	struct arena a = { 0 };
	struct snapshot *s;

	if (b->nbackends != prev->nbackends)
		return NULL;
	for (uint32_t i = 0; i < b->nbackends; i++)
		if (strcmp(b->backends[i].name, prev->backends[i].name))
			return NULL;
	s = arena_zalloc(&a, sizeof(*s));
	if (!s)
		return NULL;
	*s = *prev; /* host tables, paths, certificates and their tls_ctx are shared */
	s->generation = generation;
	s->backends = build_backends(&a, b);
	if (!s->backends) {
		arena_free_chunks(a.head);
		return NULL;
	}
	if (prev->default_backend)
		s->default_backend = &s->backends[prev->default_backend - prev->backends];
	atomic_fetch_add_explicit(&((struct routes_share *)prev->shared)->refs, 1,
				  memory_order_relaxed);
	atomic_init(&s->refs, 1);
	s->arena = a.head;
	return s;
}

/* Drops one reference; the last one frees the whole arena. */
void snapshot_release(struct snapshot *s)
{
	if (!s)
		return;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
		struct routes_share *share = s->shared;
		if (share && atomic_fetch_sub_explicit(&share->refs, 1, memory_order_acq_rel) == 1) {
			/* The compiled certificates go with the routes they come from. */
			if (s->tls_ctx_free)
				s->tls_ctx_free(s->tls_ctx);
			arena_free_chunks(share->chunks);
		}
		arena_free_chunks(s->arena);
	}
}
