/* balancer.h - per-shard endpoint choice: round robin, EWMA and least
 * request (power of two choices), consistent hashing; passive health with
 * ejection and panic mode. State is private to one shard: no locks. */
#ifndef RINGRESS_BALANCER_H
#define RINGRESS_BALANCER_H

#include "core/snapshot-t.h"

#include <stdbool.h>
#include <stdint.h>

/* Health and load of one endpoint address as seen by one shard. It outlives
 * snapshots: an endpoint that stays across a configuration change keeps
 * its state. */
struct ep_state {
	struct ep_state *next; /* hash chain */
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} addr;
	socklen_t addrlen;
	uint32_t hash;
	uint32_t active;      /* requests in flight from this shard */
	uint32_t fails;       /* failures in a row */
	uint32_t mark;        /* sweep epoch */
	uint64_t generation;  /* newest snapshot with this endpoint (view_init) */
	uint64_t eject_until; /* ms; skipped until then */
	uint64_t backoff_ms;  /* next ejection length */
	double ewma_ms;       /* response-time average */
	uint64_t ewma_at;     /* ms of the last update */
};

struct balancer {
	struct ep_state **tab; /* hash chains; nbuckets (a power of two) >= count */
	uint32_t nbuckets;
	uint32_t epoch;
	uint32_t count;
	uint64_t rng;
	uint8_t default_lb;     /* enum snap_lb for SNAP_LB_DEFAULT */
	uint32_t max_fails;     /* failures in a row before ejection; 0 = never */
	uint64_t fail_timeout_ms; /* first ejection; doubles while failing, up to 8x */
};

/* The endpoint states of one snapshot's backends, resolved once. */
struct bal_view {
	struct ep_state **eps; /* flattened: backend b's endpoints at off[b] */
	uint32_t *off;
	uint32_t *rr; /* round-robin position per backend */
};

/* Initialises b. seed starts the shard's random sequence. */
void balancer_init(struct balancer *b, uint8_t default_lb, uint32_t max_fails,
		   uint64_t fail_timeout_ms, uint64_t seed);

/* Frees every state. */
void balancer_deinit(struct balancer *b);

/* Builds v for snapshot s (finding or creating a state per endpoint);
 * start is the shard's round-robin offset. Returns 0 or -ENOMEM. */
int balancer_view_init(struct balancer *b, struct bal_view *v, const struct snapshot *s,
		       uint32_t start);

/* The state of an endpoint address, or NULL when no snapshot has it. */
struct ep_state *balancer_find(const struct balancer *b, const struct snap_endpoint *ep);

/* Frees v's arrays (not the states). */
void balancer_view_deinit(struct bal_view *v);

/* Frees the states that none of the given views refer to. */
void balancer_sweep(struct balancer *b, struct bal_view *const *views, int nviews,
		    const struct snapshot *const *snaps);

/* Chooses an endpoint of backend be for a request. key is the hash of the
 * request's key (SNAP_LB_HASH only). Endpoints whose index is in
 * tried[0..ntried) are avoided while another is eligible; ejected endpoints
 * are avoided unless every endpoint is ejected (panic mode: a service is
 * never blackholed by its own health state). Returns an index into
 * be->endpoints, or -1 when the backend has none. */
int balancer_pick(struct balancer *b, struct bal_view *v, const struct snap_backend *be,
		  uint32_t key, const uint32_t *tried, int ntried, uint64_t now_ms);

/* Records the end of a request on st: ok (a response below 500) clears the
 * failure count and feeds the EWMA with latency_ms; a failure counts toward
 * ejection. */
bool balancer_done(struct balancer *b, struct ep_state *st, bool ok, uint64_t latency_ms,
		   uint64_t now_ms);

#endif
