/* stream_test.c - send-queue ownership: a buffer queued without ownership
 * (the forwarded request head) is taken over by the stream when its owner
 * goes away, so that a send still in flight never reads freed memory. */
#include "core/shard-t.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(stream, adopt_takes_over_a_queued_buffer)
{
	struct shard sh;
	memset(&sh, 0, sizeof(sh));
	struct stream s = {.sh = &sh, .fd = -1};
	char *head = malloc(256);
	cr_assert_not_null(head);
	strcpy(head, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");

	cr_assert_eq(stream_tx_push_buf(&s, head, (uint32_t)strlen(head), 256), 0);
	cr_assert_not_null(s.txq);
	cr_assert_null(s.txq->tx[0].heap, "queued without ownership");

	/* A buffer the stream never saw is not taken. */
	char other[16];
	cr_expect_not(stream_tx_adopt(&s, other, sizeof(other)));

	/* Partly sent, as stream_on_send leaves it: the item points inside the
	 * buffer and its cap is gone; still taken, and the pointer to free is
	 * the buffer's start. */
	s.txq->tx[0].base += 4;
	s.txq->tx[0].len -= 4;
	s.txq->tx[0].cap = 0;
	cr_assert(stream_tx_adopt(&s, head, 256));
	cr_expect_eq(s.txq->tx[0].heap, head);
	cr_expect_eq(s.txq->tx[0].heap_size, 256, "its size goes with it (for blk_free)");

	/* Owned once only. */
	cr_expect_not(stream_tx_adopt(&s, head, 256));

	free(s.txq->tx[0].heap);
	free(s.txq);
}

Test(stream, adopt_without_queue_or_after_send)
{
	struct shard sh;
	memset(&sh, 0, sizeof(sh));
	struct stream s = {.sh = &sh, .fd = -1};
	char buf[64];
	/* Nothing queued (the send completed and the queue went back). */
	cr_expect_not(stream_tx_adopt(&s, buf, sizeof(buf)));
}

/* Input received and not yet used, across the wrap of the chunk ring (an
 * upstream whose whole small body came with its head keeps its multishot
 * recv). */
Test(stream, rx_bytes_counts_queued_input)
{
	struct shard sh;
	memset(&sh, 0, sizeof(sh));
	struct stream s = {.sh = &sh, .fd = -1};
	s.rx = s.rx_inline;
	s.rx_cap = 2;
	cr_expect_eq(stream_rx_bytes(&s), 0);
	s.rx_head = 1;
	s.rx_n = 2;
	s.rx_inline[1] = (struct rxchunk){.off = 10, .len = 100};
	s.rx_inline[0] = (struct rxchunk){.off = 0, .len = 50};
	cr_expect_eq(stream_rx_bytes(&s), 150);
	s.rx_n = 1;
	cr_expect_eq(stream_rx_bytes(&s), 100);
}

/* The provided buffer pool: a shard with the buffer ring's memory but no
 * kernel ring behind it (the kernel's side is played by shard_buf_taken). */
static struct shard *pool_shard(uint32_t nbufs, bool tls)
{
	static struct core_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.buf_size = 16384;
	cfg.buf_count = nbufs;
	cfg.https_port = tls ? 443 : 0;
	struct shard *sh = aligned_alloc(_Alignof(struct shard),
					 (sizeof(*sh) + _Alignof(struct shard) - 1) / _Alignof(struct shard) *
						 _Alignof(struct shard));
	cr_assert_not_null(sh);
	memset(sh, 0, sizeof(*sh));
	sh->cfg = &cfg;
	sh->nbufs = nbufs;
	sh->br = aligned_alloc(4096, (sizeof(struct io_uring_buf) * nbufs + 4095) / 4096 * 4096);
	cr_assert_not_null(sh->br);
	cr_assert_eq(shard_bufs_init(sh), 0);
	return sh;
}

static void pool_free(struct shard *sh)
{
	free(sh->br);
	free(sh->bufs);
	free(sh->bufref);
	free(sh->plain_free);
	free(sh->ring_free);
	free(sh);
}

/* The ring entry n places after the kernel's head (the kernel takes the
 * entries in order from where it stopped; `taken` entries so far). */
static uint16_t ring_entry(const struct shard *sh, uint32_t taken)
{
	return sh->br->bufs[taken & (sh->nbufs - 1)].bid;
}

static uint16_t ring_tail(const struct shard *sh)
{
	return __atomic_load_n(&sh->br->tail, __ATOMIC_ACQUIRE);
}

Test(stream, buffer_ring_holds_few_and_reuses_the_freshest)
{
	struct shard *sh = pool_shard(1024, false);
	/* A shallow ring, the rest of the pool on the free stack. */
	cr_assert_eq(sh->br_depth, BUF_DEPTH_MIN);
	cr_expect_eq(sh->br_avail, BUF_DEPTH_MIN);
	cr_expect_eq(ring_tail(sh), BUF_DEPTH_MIN);
	cr_expect_eq(sh->nring_free, 1024 - BUF_DEPTH_MIN);
	for (uint32_t i = 0; i < BUF_DEPTH_MIN; i++) {
		const struct io_uring_buf *b = &sh->br->bufs[i];
		cr_assert_eq(b->bid, i);
		cr_assert_eq(b->addr, (uint64_t)(uintptr_t)shard_buf(sh, i));
		cr_assert_eq(b->len, 16384);
	}
	/* Buffers do not overlap, and start a cache line past 16 KiB apart. */
	cr_expect_eq(shard_buf(sh, 1) - shard_buf(sh, 0), 16384 + 64);

	/* The kernel takes 10; nothing goes back until they are released. */
	uint32_t taken = 0;
	for (; taken < 10; taken++)
		shard_buf_taken(sh, ring_entry(sh, taken));
	cr_expect_eq(sh->br_avail, BUF_DEPTH_MIN - 10);
	/* Three are released, one twice referenced; then the refill before the
	 * next wait puts the most recently freed back first, then the stack. */
	sh->bufref[4]++;
	shard_buf_release(sh, 2);
	shard_buf_release(sh, 7);
	shard_buf_release(sh, 4); /* still referenced */
	shard_buf_release(sh, 5);
	shard_buf_refill(sh);
	cr_expect_eq(sh->br_avail, BUF_DEPTH_MIN);
	cr_expect_eq(ring_tail(sh), BUF_DEPTH_MIN + 10);
	uint16_t want[10] = {5, 7, 2, 128, 129, 130, 131, 132, 133, 134};
	for (int i = 0; i < 10; i++)
		cr_expect_eq(ring_entry(sh, BUF_DEPTH_MIN + (uint32_t)i), want[i], "refill %d: %u", i,
			     ring_entry(sh, BUF_DEPTH_MIN + (uint32_t)i));
	/* A full ring takes nothing more: a release waits on the stack. */
	shard_buf_release(sh, 4);
	shard_buf_refill(sh);
	cr_expect_eq(ring_tail(sh), BUF_DEPTH_MIN + 10);
	cr_expect_eq(sh->ring_free[sh->nring_free - 1], 4);
	pool_free(sh);
}

Test(stream, buffer_ring_deepens_when_dry_and_trims_when_quiet)
{
	struct shard *sh = pool_shard(1024, false);
	sh->now_ms = 1000;
	/* The kernel empties the ring: a receive meets ENOBUFS. */
	for (uint32_t t = 0; t < BUF_DEPTH_MIN; t++)
		shard_buf_taken(sh, ring_entry(sh, t));
	cr_assert_eq(sh->br_avail, 0);
	shard_buf_ran_dry(sh);
	cr_expect_eq(sh->br_depth, 2 * BUF_DEPTH_MIN);
	shard_buf_ran_dry(sh); /* another receive of the same pass */
	cr_expect_eq(sh->br_depth, 2 * BUF_DEPTH_MIN, "one doubling per refill: %u", sh->br_depth);
	shard_buf_refill(sh);
	cr_expect_eq(sh->br_avail, 2 * BUF_DEPTH_MIN);
	for (int i = 0; i < 3; i++) {
		shard_buf_ran_dry(sh);
		shard_buf_refill(sh);
	}
	cr_expect_eq(sh->br_depth, 1024, "never deeper than the pool: %u", sh->br_depth);
	/* The refills stopped when the stack ran out (128 are held by
	 * "receives"). */
	cr_expect_eq(sh->br_avail, 1024 - BUF_DEPTH_MIN);
	cr_expect_eq(sh->nring_free, 0);

	/* Quiet for less than BUF_TRIM_MS: kept. Then halved per period, down
	 * to BUF_DEPTH_MIN. */
	sh->now_ms += BUF_TRIM_MS - 1;
	shard_buf_trim(sh);
	cr_expect_eq(sh->br_depth, 1024);
	sh->now_ms += 1;
	shard_buf_trim(sh);
	cr_expect_eq(sh->br_depth, 512);
	shard_buf_trim(sh);
	cr_expect_eq(sh->br_depth, 512, "one halving per period");
	for (int i = 0; i < 5; i++) {
		sh->now_ms += BUF_TRIM_MS;
		shard_buf_trim(sh);
	}
	cr_expect_eq(sh->br_depth, BUF_DEPTH_MIN);
	/* Returned buffers now wait on the stack until the ring drops below
	 * its depth. */
	for (uint32_t t = 0; t < BUF_DEPTH_MIN; t++)
		shard_buf_release(sh, (uint16_t)t);
	shard_buf_refill(sh);
	cr_expect_eq(sh->br_avail, 1024 - BUF_DEPTH_MIN);
	cr_expect_eq(sh->nring_free, BUF_DEPTH_MIN);
	pool_free(sh);
}

Test(stream, small_pool_and_decrypted_data_buffers)
{
	/* A pool smaller than BUF_DEPTH_MIN goes into the ring whole. */
	struct shard *sh = pool_shard(64, true);
	cr_expect_eq(sh->br_depth, 64);
	cr_expect_eq(sh->br_avail, 64);
	cr_expect_eq(sh->nring_free, 0);
	/* Buffers for decrypted data follow the ring's, on their own stack. */
	int pb = shard_plain_buf(sh);
	cr_assert_geq(pb, 64);
	cr_expect_eq(shard_buf(sh, (uint32_t)pb) - shard_buf(sh, 0), (ptrdiff_t)pb * (16384 + 64));
	shard_buf_release(sh, (uint16_t)pb);
	shard_buf_refill(sh);
	cr_expect_eq(ring_tail(sh), 64, "a decrypted data buffer never enters the ring");
	cr_expect_eq(sh->nplain_free, 64);
	pool_free(sh);
}
