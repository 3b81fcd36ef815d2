/* blkcache.h - per-thread stacks of recently freed heap blocks of a few
 * fixed sizes, for the blocks every request allocates and frees (heads,
 * forwarded heads, response heads, header arrays).
 *
 * glibc's tcache holds seven blocks of a size and nothing above 1 KiB, so
 * a shard that finishes 64 requests in one pass sent most of them through
 * malloc's bins (3 % of the proxy's CPU at 64 connections). A cached block
 * is an ordinary malloc() block: anything from blk_alloc may be given to
 * free() or realloc(), and blk_free takes any malloc() block (or NULL) with
 * a lower bound of its size (what blk_alloc reported, or what malloc was
 * asked for; 0 when unknown), keeping it when that size fits a class and
 * the class's stack has room, freeing it otherwise. The size is passed, not
 * looked up (malloc_usable_size reads the next chunk's header, a cache miss
 * that cost as much as what it saved). Each thread's stacks are bounded
 * (about 1 MiB); blk_cache_drain frees the calling thread's. */
#ifndef RINGRESS_CORE_BLKCACHE_H
#define RINGRESS_CORE_BLKCACHE_H

#include <stddef.h>
#include <stdint.h>

/* A block of at least n bytes; *cap (optional) gets its size (n rounded up
 * to a class, or n above the largest class). NULL when out of memory. */
void *blk_alloc(size_t n, uint32_t *cap);

/* Keeps p (at least size bytes) for a later blk_alloc of its class, or
 * frees it. */
void blk_free(void *p, size_t size);

/* Frees the blocks cached by the calling thread (at its end). */
void blk_cache_drain(void);

/* Blocks the calling thread holds (for tests). */
unsigned blk_cache_count(void);

#endif
