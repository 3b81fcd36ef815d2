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
