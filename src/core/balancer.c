/* balancer.c - endpoint choice and passive health for one shard. */
#include "core/balancer.h"

#include "core/snapshot.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EWMA_DECAY_MS 10000.0 /* like ingress-nginx's ewma: 10 s decay */
#define EWMA_DEFAULT_MS 1.0

void balancer_init(struct balancer *b, uint8_t default_lb, uint32_t max_fails,
		   uint64_t fail_timeout_ms, uint64_t seed)
{
	memset(b, 0, sizeof(*b));
	b->default_lb = default_lb ? default_lb : SNAP_LB_ROUND_ROBIN;
	b->max_fails = max_fails;
	b->fail_timeout_ms = fail_timeout_ms ? fail_timeout_ms : 10000;
	b->rng = seed | 1;
}

void balancer_deinit(struct balancer *b)
{
	for (uint32_t i = 0; i < b->nbuckets; i++) {
		struct ep_state *st = b->tab[i];
		while (st) {
			struct ep_state *n = st->next;
			free(st);
			st = n;
		}
	}
	free(b->tab);
	b->tab = NULL;
	b->nbuckets = 0;
	b->count = 0;
}

static uint64_t rnd(struct balancer *b)
{
	/* xorshift64* */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 0x2545F4914F6CDD1Dull;
}

/* Doubles the chains' table (keeps chains short with 50,000 endpoints). */
static int grow(struct balancer *b)
{
	uint32_t n = b->nbuckets ? b->nbuckets * 2 : 1024;
	struct ep_state **tab = calloc(n, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	for (uint32_t i = 0; i < b->nbuckets; i++) {
		struct ep_state *st = b->tab[i];
		while (st) {
			struct ep_state *next = st->next;
			st->next = tab[st->hash & (n - 1)];
			tab[st->hash & (n - 1)] = st;
			st = next;
		}
	}
	free(b->tab);
	b->tab = tab;
	b->nbuckets = n;
	return 0;
}

static struct ep_state *lookup(const struct balancer *b, const struct snap_endpoint *ep,
			       uint32_t h)
{
	if (!b->nbuckets)
		return NULL;
	for (struct ep_state *st = b->tab[h & (b->nbuckets - 1)]; st; st = st->next)
		if (st->hash == h && st->addrlen == ep->addrlen &&
		    !memcmp(&st->addr, &ep->addr, ep->addrlen))
			return st;
	return NULL;
}

struct ep_state *balancer_find(const struct balancer *b, const struct snap_endpoint *ep)
{
	return lookup(b, ep, snapshot_hash(&ep->addr, ep->addrlen, 0));
}

static struct ep_state *state_get(struct balancer *b, const struct snap_endpoint *ep)
{
	uint32_t h = snapshot_hash(&ep->addr, ep->addrlen, 0);
	struct ep_state *found = lookup(b, ep, h);
	if (found)
		return found;
	if (b->count >= b->nbuckets && grow(b) < 0 && !b->nbuckets)
		return NULL;
	struct ep_state **slot = &b->tab[h & (b->nbuckets - 1)];

	struct ep_state *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	memcpy(&st->addr, &ep->addr, ep->addrlen);
	st->addrlen = ep->addrlen;
	st->hash = h;
	st->ewma_ms = EWMA_DEFAULT_MS;
	st->next = *slot;
	*slot = st;
	b->count++;
	return st;
}

int balancer_view_init(struct balancer *b, struct bal_view *v, const struct snapshot *s,
		       uint32_t start)
{
	uint32_t total = 0;

	memset(v, 0, sizeof(*v));
	for (uint32_t i = 0; i < s->nbackends; i++)
		total += s->backends[i].nendpoints;
	v->eps = calloc(total ? total : 1, sizeof(*v->eps));
	v->off = calloc(s->nbackends ? s->nbackends : 1, sizeof(*v->off));
	v->rr = calloc(s->nbackends ? s->nbackends : 1, sizeof(*v->rr));
	if (!v->eps || !v->off || !v->rr)
		goto err;
	total = 0;
	for (uint32_t i = 0; i < s->nbackends; i++) {
		const struct snap_backend *be = &s->backends[i];
		v->off[i] = total;
		v->rr[i] = start;
		for (uint32_t e = 0; e < be->nendpoints; e++) {
			v->eps[total] = state_get(b, &be->endpoints[e]);
			if (!v->eps[total])
				goto err;
			v->eps[total]->generation = s->generation;
			total++;
		}
	}
	return 0;
err:
	balancer_view_deinit(v);
	return -ENOMEM;
}

void balancer_view_deinit(struct bal_view *v)
{
	free(v->eps);
	free(v->off);
	free(v->rr);
	memset(v, 0, sizeof(*v));
}

void balancer_sweep(struct balancer *b, struct bal_view *const *views, int nviews,
		    const struct snapshot *const *snaps)
{
	b->epoch++;
	for (int i = 0; i < nviews; i++) {
		const struct snapshot *s = snaps[i];
		uint32_t total = 0;
		for (uint32_t k = 0; k < s->nbackends; k++)
			total += s->backends[k].nendpoints;
		for (uint32_t k = 0; k < total; k++)
			views[i]->eps[k]->mark = b->epoch;
	}
	for (uint32_t i = 0; i < b->nbuckets; i++) {
		struct ep_state **pp = &b->tab[i];
		while (*pp) {
			struct ep_state *st = *pp;
			if (st->mark != b->epoch && !st->active) {
				*pp = st->next;
				free(st);
				b->count--;
			} else {
				pp = &st->next;
			}
		}
	}
}

static bool was_tried(uint32_t e, const uint32_t *tried, int ntried)
{
	for (int i = 0; i < ntried; i++)
		if (tried[i] == e)
			return true;
	return false;
}

/* Eligibility levels, best first: healthy and untried; healthy; untried;
 * anything (panic). */
static bool eligible(struct ep_state *st, uint32_t e, int level, const uint32_t *tried,
		     int ntried, uint64_t now)
{
	bool healthy = now >= st->eject_until;
	bool fresh = !was_tried(e, tried, ntried);
	switch (level) {
	case 0: return healthy && fresh;
	case 1: return fresh;
	default: return true;
	}
}

static double ewma_score(struct ep_state *st, uint64_t now)
{
	double age = (double)(now - st->ewma_at);
	double w = exp(-age / EWMA_DECAY_MS);
	/* Old measurements decay toward the default latency. */
	double lat = st->ewma_ms * w + EWMA_DEFAULT_MS * (1.0 - w);
	return lat * (double)(st->active + 1);
}

int balancer_pick(struct balancer *b, struct bal_view *v, const struct snap_backend *be,
		  uint32_t key, const uint32_t *tried, int ntried, uint64_t now_ms)
{
	uint32_t n = be->nendpoints;
	struct ep_state **eps = v->eps + v->off[be->id];
	uint8_t lb = be->opts.lb ? be->opts.lb : b->default_lb;

	if (!n)
		return -1;
	if (n == 1)
		return 0;
	if (lb == SNAP_LB_HASH && !be->nring)
		lb = SNAP_LB_ROUND_ROBIN;
	for (int level = 0; level < 3; level++) {
		if (lb == SNAP_LB_HASH) {
			/* First ring point at or after key, then walk on. */
			uint32_t lo = 0, hi = be->nring;
			while (lo < hi) {
				uint32_t mid = lo + (hi - lo) / 2;
				if (be->ring[mid].hash < key)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (uint32_t k = 0; k < be->nring; k++) {
				uint32_t e = be->ring[(lo + k) % be->nring].endpoint;
				if (eligible(eps[e], e, level, tried, ntried, now_ms))
					return (int)e;
			}
			continue;
		}
		if (lb == SNAP_LB_ROUND_ROBIN) {
			for (uint32_t k = 0; k < n; k++) {
				uint32_t e = v->rr[be->id]++ % n;
				if (eligible(eps[e], e, level, tried, ntried, now_ms))
					return (int)e;
			}
			continue;
		}
		/* Power of two choices among eligible endpoints. */
		int a = -1, c = -1;
		for (int attempt = 0; attempt < 8 && c < 0; attempt++) {
			uint32_t e = (uint32_t)(rnd(b) % n);
			if (!eligible(eps[e], e, level, tried, ntried, now_ms))
				continue;
			if (a < 0)
				a = (int)e;
			else if ((int)e != a)
				c = (int)e;
		}
		if (a < 0) {
			/* Random draws missed: scan for any eligible one. */
			for (uint32_t e = 0; e < n && a < 0; e++)
				if (eligible(eps[e], e, level, tried, ntried, now_ms))
					a = (int)e;
			if (a < 0)
				continue;
		}
		if (c < 0)
			return a;
		if (lb == SNAP_LB_LEAST_REQUEST)
			return eps[c]->active < eps[a]->active ? c : a;
		return ewma_score(eps[c], now_ms) < ewma_score(eps[a], now_ms) ? c : a;
	}
	return 0;
}

bool balancer_done(struct balancer *b, struct ep_state *st, bool ok, uint64_t latency_ms,
		   uint64_t now_ms)
{
	if (ok) {
		double age = (double)(now_ms - st->ewma_at);
		double w = st->ewma_at ? exp(-age / EWMA_DECAY_MS) : 0.0;
		st->ewma_ms = st->ewma_ms * w + (double)latency_ms * (1.0 - w);
		if (st->ewma_ms < 0.01)
			st->ewma_ms = 0.01;
		st->ewma_at = now_ms;
		st->fails = 0;
		st->backoff_ms = 0;
		st->eject_until = 0;
		return false;
	}
	st->fails++;
	if (!b->max_fails || st->fails < b->max_fails)
		return false;
	/* Ejected; the back-off grows while it keeps failing. */
	if (!st->backoff_ms)
		st->backoff_ms = b->fail_timeout_ms;
	else if (st->backoff_ms < b->fail_timeout_ms * 8)
		st->backoff_ms *= 2;
	st->eject_until = now_ms + st->backoff_ms;
	return true;
}
