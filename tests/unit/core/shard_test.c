/* shard_test.c - the policy of the shards' batched waits. */
#include "core/shard.h"

#include <criterion/criterion.h>

/* Batches only on a busy shard with at least 16 requests in flight, never
 * larger than those requests, at most 64. */
Test(shard, batch_want)
{
	cr_expect_eq(shard_batch_want(0, true), 1);
	cr_expect_eq(shard_batch_want(15, true), 1);
	cr_expect_eq(shard_batch_want(16, true), 16);
	cr_expect_eq(shard_batch_want(40, true), 40);
	cr_expect_eq(shard_batch_want(64, true), 64);
	cr_expect_eq(shard_batch_want(1000, true), 64);
	/* Requests held at slow upstreams do not make an idle shard batch. */
	cr_expect_eq(shard_batch_want(16, false), 1);
	cr_expect_eq(shard_batch_want(1000, false), 1);
}

/* Busy from half of the span on; once busy, until below 40 %. */
Test(shard, busy_with_hysteresis)
{
	const uint64_t span = 2000000;
	cr_expect(!shard_busy_after(false, 0, span));
	cr_expect(!shard_busy_after(false, span * 49 / 100, span));
	cr_expect(shard_busy_after(false, span / 2, span));
	cr_expect(shard_busy_after(false, span, span));
	cr_expect(shard_busy_after(true, span * 45 / 100, span));
	cr_expect(shard_busy_after(true, span * 40 / 100, span));
	cr_expect(!shard_busy_after(true, span * 39 / 100, span));
	cr_expect(!shard_busy_after(true, 0, span));
	/* A long span (a shard that slept for seconds) is measured the same way. */
	cr_expect(!shard_busy_after(true, 1000000, 5000000000ull));
}
