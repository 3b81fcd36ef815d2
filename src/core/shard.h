/* shard.h - the group of per-core shard threads that serve traffic. */
#ifndef RINGRESS_SHARD_H
#define RINGRESS_SHARD_H

#include "core/config-t.h"
#include "core/snapshot-t.h"

#include <stdbool.h>
#include <stdint.h>

struct shard_group;

/* Probes io_uring, opens one SO_REUSEPORT listener per shard, starts one
 * thread per shard pinned to the CPUs of the process's allowed set, and
 * waits until every shard's ring is up. cfg must outlive the group.
 * Returns NULL after logging a message that names the cause and the fix. */
struct shard_group *shard_group_start(const struct core_config *cfg);

/* Hands snapshot s to every shard (each takes its own reference through its
 * SPSC queue and adopts it between two CQE batches), then drops the
 * caller's reference. Called from the control thread only. */
void shard_group_publish(struct shard_group *g, struct snapshot *s);

/* True while every shard's loop has turned within the last few seconds. */
bool shard_group_healthy(struct shard_group *g);

/* True once every shard has adopted a configuration. */
bool shard_group_ready(struct shard_group *g);

/* Counters summed over shards, for logs and the admin port. */
struct shard_stats {
	uint64_t accepted, requests, responses_local, upstream_connects, upstream_errors;
	uint64_t active_conns;
};
void shard_group_stats(struct shard_group *g, struct shard_stats *out);

/* The policy of the shards' batched waits (exposed for tests):
 * the completions a wait asks for, with inflight requests at upstreams on a
 * shard that is busy or not (1: every completion wakes the shard); */
unsigned shard_batch_want(unsigned inflight, bool busy);
/* and whether a shard whose thread was busy (running or waiting for its
 * CPU) busy_ns of the last span_ns is busy, when it was (busy) or was not
 * before, with --batch-busy-percent on_pct. */
bool shard_busy_after(bool busy, uint64_t busy_ns, uint64_t span_ns, unsigned on_pct);

/* Graceful stop: shards stop accepting, finish requests in flight (closing
 * keep-alive connections after their current response) within
 * cfg->shutdown_timeout_ms, then exit; joins them and frees the group. */
void shard_group_stop(struct shard_group *g);

#endif
