/* blkcache_test.c - the per-thread cache of freed heap blocks. */
#include "core/blkcache.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

Test(blkcache, sizes_round_up_to_a_class)
{
	uint32_t cap = 0;
	void *a = blk_alloc(1, &cap);
	cr_assert_not_null(a);
	cr_expect_eq(cap, 256);
	memset(a, 1, cap); /* the whole class size is usable */
	void *b = blk_alloc(1500, &cap);
	cr_expect_eq(cap, 2048);
	memset(b, 1, cap);
	void *c = blk_alloc(70000, &cap); /* above every class: as asked */
	cr_expect_eq(cap, 70000);
	blk_free(a, 256);
	blk_free(b, 2048);
	blk_free(c, 70000);
	cr_expect_eq(blk_cache_count(), 2, "the 70000-byte block must not be kept");
	blk_cache_drain();
	cr_expect_eq(blk_cache_count(), 0);
}

Test(blkcache, freed_block_is_reused_last_in_first_out)
{
	uint32_t cap;
	void *a = blk_alloc(1000, &cap);
	void *b = blk_alloc(1000, &cap);
	blk_free(a, cap);
	blk_free(b, cap);
	cr_expect_eq(blk_alloc(600, &cap), b);
	cr_expect_eq(cap, 1024);
	cr_expect_eq(blk_alloc(1024, &cap), a);
	/* Another class does not take them. */
	blk_free(a, 1024);
	void *d = blk_alloc(2000, &cap);
	cr_expect_neq(d, a);
	free(d); /* any block may go to free() */
	free(b);
	blk_cache_drain();
}

Test(blkcache, plain_malloc_blocks_are_taken_by_their_size)
{
	/* 3000 bytes serve the 2048 class; 9000 is more than twice 4096 (a
	 * grown head) and goes back to malloc; 0 means unknown. */
	blk_free(malloc(3000), 3000);
	cr_expect_eq(blk_cache_count(), 1);
	uint32_t cap;
	void *p = blk_alloc(2048, &cap);
	cr_expect_eq(cap, 2048);
	memset(p, 0, 2048);
	blk_free(malloc(9000), 9000);
	blk_free(malloc(300), 0);
	blk_free(NULL, 256);
	cr_expect_eq(blk_cache_count(), 0);
	free(p);
}

Test(blkcache, bounded_per_class)
{
	enum { N = 600 };
	void *v[N];
	for (int i = 0; i < N; i++)
		v[i] = blk_alloc(200, NULL);
	for (int i = 0; i < N; i++)
		blk_free(v[i], 256);
	cr_expect_eq(blk_cache_count(), 256, "a class keeps at most 256 blocks");
	blk_cache_drain();
	cr_expect_eq(blk_cache_count(), 0);
}

static void *other_thread(void *arg)
{
	(void)arg;
	unsigned seen = blk_cache_count();
	blk_free(blk_alloc(100, NULL), 256);
	unsigned after = blk_cache_count();
	blk_cache_drain();
	return (void *)(uintptr_t)(seen == 0 && after == 1);
}

Test(blkcache, each_thread_has_its_own)
{
	blk_free(blk_alloc(100, NULL), 256);
	cr_expect_eq(blk_cache_count(), 1);
	pthread_t t;
	void *ok;
	cr_assert_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
	pthread_join(t, &ok);
	cr_expect(ok, "another thread saw this thread's blocks");
	cr_expect_eq(blk_cache_count(), 1);
	blk_cache_drain();
}
