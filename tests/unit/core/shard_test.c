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

/* Busy from half of the span on (--batch-busy-percent 50); once busy, until
 * below four fifths of that. */
Test(shard, busy_with_hysteresis)
{
	const uint64_t span = 10000000;
	cr_expect(!shard_busy_after(false, 0, span, 50));
	cr_expect(!shard_busy_after(false, span * 49 / 100, span, 50));
	cr_expect(shard_busy_after(false, span / 2, span, 50));
	cr_expect(shard_busy_after(false, span, span, 50));
	cr_expect(shard_busy_after(true, span * 45 / 100, span, 50));
	cr_expect(shard_busy_after(true, span * 40 / 100, span, 50));
	cr_expect(!shard_busy_after(true, span * 39 / 100, span, 50));
	cr_expect(!shard_busy_after(true, 0, span, 50));
	/* A long span (a shard that slept until its tick) is measured the same way. */
	cr_expect(!shard_busy_after(true, 1000000, 100000000, 50));
	/* Other thresholds; 0 means always busy, 100 only when never idle. */
	cr_expect(shard_busy_after(false, span / 5, span, 20));
	cr_expect(!shard_busy_after(false, span / 5, span, 21));
	cr_expect(shard_busy_after(false, 0, span, 0));
	cr_expect(shard_busy_after(true, 0, span, 0));
	cr_expect(!shard_busy_after(false, span * 99 / 100, span, 100));
	cr_expect(shard_busy_after(true, span * 80 / 100, span, 100));
	/* Four fifths is not rounded down to nothing. */
	cr_expect(!shard_busy_after(true, 0, span, 1));
	cr_expect(shard_busy_after(true, span / 125, span, 1));
	cr_expect(!shard_busy_after(true, span / 126, span, 1));
}
