/* blkcache.c - per-thread stacks of freed heap blocks of fixed sizes. */
#include "core/blkcache.h"

#include <stdlib.h>

/* Sizes and how many of each a thread keeps: 256 B header arrays, 1 KiB
 * response heads, 2 KiB request heads and forwarded heads, 4 KiB larger
 * heads. 64 KiB + 256 KiB + 512 KiB + 256 KiB at most. */
static const uint32_t class_size[] = {256, 1024, 2048, 4096};
static const uint16_t class_depth[] = {256, 256, 256, 64};
#define NCLASS (sizeof(class_size) / sizeof(class_size[0]))
#define MAX_DEPTH 256

struct stack {
	uint16_t n;
	void *b[MAX_DEPTH];
};

static __thread struct stack stacks[NCLASS];

void *blk_alloc(size_t n, uint32_t *cap)
{
	for (unsigned c = 0; c < NCLASS; c++) {
		if (n > class_size[c])
			continue;
		if (cap)
			*cap = class_size[c];
		struct stack *s = &stacks[c];
		return s->n ? s->b[--s->n] : malloc(class_size[c]);
	}
	if (cap)
		*cap = (uint32_t)n;
	return malloc(n);
}

void blk_free(void *p, size_t size)
{
	if (!p)
		return;
	/* The largest class the block can serve, unless it is much larger
	 * (a grown head): those go back to malloc. */
	for (unsigned c = NCLASS; c-- > 0;) {
		if (size < class_size[c])
			continue;
		struct stack *s = &stacks[c];
		if (size < 2 * (size_t)class_size[c] && s->n < class_depth[c]) {
			s->b[s->n++] = p;
			return;
		}
		break;
	}
	free(p);
}

void blk_cache_drain(void)
{
	for (unsigned c = 0; c < NCLASS; c++)
		while (stacks[c].n)
			free(stacks[c].b[--stacks[c].n]);
}

unsigned blk_cache_count(void)
{
	unsigned n = 0;
	for (unsigned c = 0; c < NCLASS; c++)
		n += stacks[c].n;
	return n;
}
