/* spsc.c - allocation of the SPSC queue; the hot path is inline in spsc.h. */
#include "core/spsc.h"

#include <errno.h>
#include <stdlib.h>

int spsc_init(struct spsc *q, size_t cap)
{
	size_t n = 2;
	while (n < cap)
		n <<= 1;
	q->slots = calloc(n, sizeof(void *));
	if (!q->slots)
		return -ENOMEM;
	q->mask = n - 1;
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	q->head_cache = 0;
	q->tail_cache = 0;
	return 0;
}

void spsc_deinit(struct spsc *q)
{
	free(q->slots);
	q->slots = NULL;
}
