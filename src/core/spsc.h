/* spsc.h - bounded lock-free single-producer single-consumer queue of pointers.
 *
 * One producer thread calls spsc_push, one consumer thread calls spsc_pop.
 * Indices are free-running; capacity is a power of two. Head and tail live on
 * separate cache lines, and each side caches the other's index to avoid
 * touching the shared line on every call. */
#ifndef RINGRESS_SPSC_H
#define RINGRESS_SPSC_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spsc {
	alignas(64) _Atomic size_t tail; /* written by the producer */
	size_t head_cache;               /* producer's copy of head */
	alignas(64) _Atomic size_t head; /* written by the consumer */
	size_t tail_cache;               /* consumer's copy of tail */
	alignas(64) size_t mask;
	void **slots;
};

/* Initialises q for cap slots (rounded up to a power of two, at least 2).
 * Returns 0 or -ENOMEM. */
int spsc_init(struct spsc *q, size_t cap);

/* Frees the slots; items still queued are not freed. */
void spsc_deinit(struct spsc *q);

/* Producer side: enqueues p (non-NULL). Returns false when the queue is full. */
static inline bool spsc_push(struct spsc *q, void *p)
{
	size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
	if (t - q->head_cache > q->mask) {
		q->head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
		if (t - q->head_cache > q->mask)
			return false;
	}
	q->slots[t & q->mask] = p;
	atomic_store_explicit(&q->tail, t + 1, memory_order_release);
	return true;
}

/* Consumer side: dequeues the oldest item, or returns NULL when empty. */
static inline void *spsc_pop(struct spsc *q)
{
	size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
	if (h == q->tail_cache) {
		q->tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
		if (h == q->tail_cache)
			return NULL;
	}
	void *p = q->slots[h & q->mask];
	atomic_store_explicit(&q->head, h + 1, memory_order_release);
	return p;
}

#endif
