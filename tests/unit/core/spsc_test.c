/* spsc_test.c - the single-producer single-consumer queue. */
#include "core/spsc.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>

Test(spsc, fifo_order)
{
	struct spsc q;
	cr_assert_eq(spsc_init(&q, 8), 0);
	cr_expect_null(spsc_pop(&q));
	for (uintptr_t i = 1; i <= 5; i++)
		cr_assert(spsc_push(&q, (void *)i));
	for (uintptr_t i = 1; i <= 5; i++)
		cr_expect_eq((uintptr_t)spsc_pop(&q), i);
	cr_expect_null(spsc_pop(&q));
	spsc_deinit(&q);
}

Test(spsc, full_and_empty)
{
	struct spsc q;
	cr_assert_eq(spsc_init(&q, 5), 0); /* rounded up to 8 */
	cr_expect_eq(q.mask, 7);
	for (uintptr_t i = 1; i <= 8; i++)
		cr_assert(spsc_push(&q, (void *)i), "push %lu", (unsigned long)i);
	cr_expect_not(spsc_push(&q, (void *)99));
	cr_expect_eq((uintptr_t)spsc_pop(&q), 1);
	cr_expect(spsc_push(&q, (void *)9));
	cr_expect_not(spsc_push(&q, (void *)99));
	for (uintptr_t i = 2; i <= 9; i++)
		cr_expect_eq((uintptr_t)spsc_pop(&q), i);
	cr_expect_null(spsc_pop(&q));
	/* wrap-around many times */
	for (uintptr_t i = 1; i <= 100; i++) {
		cr_assert(spsc_push(&q, (void *)i));
		cr_assert_eq((uintptr_t)spsc_pop(&q), i);
	}
	cr_expect_null(spsc_pop(&q));
	spsc_deinit(&q);
}

Test(spsc, minimum_capacity)
{
	struct spsc q;
	cr_assert_eq(spsc_init(&q, 0), 0);
	cr_expect(spsc_push(&q, (void *)1));
	cr_expect(spsc_push(&q, (void *)2));
	cr_expect_not(spsc_push(&q, (void *)3));
	spsc_deinit(&q);
}

#define STRESS_N 1000000u

static void *producer(void *arg)
{
	struct spsc *q = arg;
	for (uintptr_t i = 1; i <= STRESS_N; i++)
		while (!spsc_push(q, (void *)i))
			sched_yield();
	return NULL;
}

static void *consumer(void *arg)
{
	struct spsc *q = arg;
	uintptr_t expect = 1, bad = 0;
	while (expect <= STRESS_N) {
		void *p = spsc_pop(q);
		if (!p) {
			sched_yield();
			continue;
		}
		if ((uintptr_t)p != expect)
			bad++;
		expect++;
	}
	return (void *)bad;
}

Test(spsc, two_thread_stress, .timeout = 60)
{
	struct spsc q;
	pthread_t pt, ct;
	void *bad;

	cr_assert_eq(spsc_init(&q, 1024), 0);
	cr_assert_eq(pthread_create(&ct, NULL, consumer, &q), 0);
	cr_assert_eq(pthread_create(&pt, NULL, producer, &q), 0);
	pthread_join(pt, NULL);
	pthread_join(ct, &bad);
	cr_expect_eq((uintptr_t)bad, 0, "%lu items out of order", (unsigned long)(uintptr_t)bad);
	cr_expect_null(spsc_pop(&q));
	spsc_deinit(&q);
}
