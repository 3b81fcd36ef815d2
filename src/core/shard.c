/* shard.c - shard threads: ring and buffer set-up, the event loop, timers,
 * snapshot adoption, listeners and the group's life cycle. */
#include "core/blkcache.h"
#include "core/log.h"
#include "core/net.h"
#include "core/shard-t.h"
#include "core/snapshot.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define BGID 1
#define TICK_MS 100
#define RING_ENTRIES 4096
/* Batched waits: on a busy shard (see busy_observe) with at least
 * BATCH_INFLIGHT requests at upstreams, a wait asks for as many completions
 * as requests in flight, at most BATCH_MAX, or --batch-wait-usec, whichever
 * comes first. Busy is measured over spans of at least BUSY_SPAN_NS. */
#define BATCH_INFLIGHT 16
#define BATCH_MAX 64
/* 10 ms: shorter spans swing with the bursts of a shard held to part of a
 * CPU (a cgroup quota's 10 ms period: a quarter of 2 ms spans read under
 * 40 % while whole periods read 80 %), and each swing turns batches off. */
#define BUSY_SPAN_NS 10000000
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15) /* Linux 6.12 */
#endif

struct shard_group {
	const struct core_config *cfg;
	_Atomic bool stopping;
	int n;
	struct shard *shards;
};

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

static uint64_t now_ms(void)
{
	return now_ns() / 1000000;
}

/* ---- timers: one FIFO list per class, so each list is sorted ---- */

static uint64_t class_duration(const struct core_config *cfg, enum timer_class cls)
{
	switch (cls) {
	case T_CLIENT_HEADER: return cfg->client_header_timeout_ms;
	case T_CLIENT_IDLE: return cfg->keepalive_timeout_ms;
	case T_CLIENT_BODY: return cfg->client_body_timeout_ms;
	case T_LINGER: return 2000;
	case T_PROXY_READ: return cfg->proxy_read_timeout_ms;
	case T_PROXY_SEND: return cfg->proxy_send_timeout_ms;
	case T_UPSTREAM_IDLE: return cfg->upstream_keepalive_timeout_ms;
	default: return 60000;
	}
}

void timer_del(struct timer *t)
{
	if (t->cls < 0)
		return;
	t->prev->next = t->next;
	t->next->prev = t->prev;
	t->cls = -1;
}

/* The list for a duration: each list holds one duration, so appending keeps
 * it sorted. When every list is taken, the last one is kept sorted by
 * insertion (rare: a handful of distinct timeouts exist in practice). */
static struct timer_list *timer_list_for(struct shard *sh, uint64_t ms, bool *sorted_insert)
{
	*sorted_insert = false;
	for (int i = 0; i < TIMER_LISTS - 1; i++) {
		struct timer_list *l = &sh->timers[i];
		if (l->duration_ms == ms)
			return l;
		if (!l->duration_ms && l->head.next == &l->head) {
			l->duration_ms = ms;
			return l;
		}
	}
	*sorted_insert = true;
	return &sh->timers[TIMER_LISTS - 1];
}

void timer_set_ms(struct shard *sh, struct timer *t, enum timer_class cls, uint64_t ms)
{
	bool sorted;
	struct timer_list *l = timer_list_for(sh, ms, &sorted);

	timer_del(t); /* before looking at the tail: t may be the tail */
	struct timer *after = l->head.prev;
	t->deadline = sh->now_ms + ms;
	t->cls = (int8_t)cls;
	if (sorted)
		while (after != &l->head && after->deadline > t->deadline)
			after = after->prev;
	t->prev = after;
	t->next = after->next;
	after->next->prev = t;
	after->next = t;
}

/* (Re)arms t to fire after its class's duration from now. */
void timer_set(struct shard *sh, struct timer *t, enum timer_class cls)
{
	timer_set_ms(sh, t, cls, class_duration(sh->cfg, cls));
}

static void timers_run(struct shard *sh)
{
	for (int c = 0; c < TIMER_LISTS; c++) {
		struct timer *head = &sh->timers[c].head;
		while (head->next != head && head->next->deadline <= sh->now_ms) {
			struct timer *t = head->next;
			enum timer_class cls = (enum timer_class)t->cls;
			timer_del(t);
			struct stream *s = (struct stream *)((char *)t - offsetof(struct stream, timer));
			proxy_on_timeout(s, cls);
		}
	}
}

/* ---- snapshots ---- */

/* Frees endpoint states that no snapshot in use refers to any more. */
static void shard_sweep(struct shard *sh)
{
	struct bal_view *views[8];
	const struct snapshot *snaps[8];
	int n = 0;
	for (unsigned i = 0; i < sizeof(sh->refs) / sizeof(sh->refs[0]); i++) {
		if (sh->refs[i].snap) {
			views[n] = &sh->refs[i].view;
			snaps[n++] = sh->refs[i].snap;
		}
	}
	balancer_sweep(&sh->bal, views, n, snaps);
}

static void snapref_clear(struct snapref *r)
{
	snapshot_release(r->snap);
	balancer_view_deinit(&r->view);
	r->snap = NULL;
}

/* Drops one use of r; a retired snapshot is released by its last user. */
void snapref_put(struct shard *sh, struct snapref *r)
{
	if (--r->users || r->current)
		return;
	snapref_clear(r);
	shard_sweep(sh);
}

static void snapshot_adopt(struct shard *sh, struct snapshot *s)
{
	struct snapref *slot = NULL;
	for (unsigned i = 0; i < sizeof(sh->refs) / sizeof(sh->refs[0]); i++) {
		if (!sh->refs[i].snap) {
			slot = &sh->refs[i];
			break;
		}
	}
	struct bal_view view;
	if (!slot || balancer_view_init(&sh->bal, &view, s, (uint32_t)sh->id) < 0) {
		/* Every slot is held by requests on old snapshots: retry on the
		 * next tick, keeping only the newest pending snapshot. */
		if (sh->pending != s)
			log_warn("shard", "shard %d: generation %llu waits for old requests to finish",
				 sh->id, (unsigned long long)s->generation);
		if (sh->pending && sh->pending != s)
			snapshot_release(sh->pending);
		sh->pending = s;
		return;
	}
	if (sh->pending == s)
		sh->pending = NULL;
	*slot = (struct snapref){.snap = s, .users = 1, .view = view, .current = true};
	if (sh->cur) {
		sh->cur->current = false;
		struct snapref *old = sh->cur;
		sh->cur = slot;
		snapref_put(sh, old);
	} else {
		sh->cur = slot;
	}
	atomic_store(&sh->generation, s->generation);
	log_debug("shard", "shard %d: adopted generation %llu", sh->id,
		  (unsigned long long)s->generation);
	proxy_pool_flush(sh);
}

static void queue_drain(struct shard *sh)
{
	struct snapshot *s, *last = NULL;
	while ((s = spsc_pop(&sh->queue))) {
		if (last)
			snapshot_release(last);
		last = s;
	}
	if (last && sh->pending) {
		snapshot_release(sh->pending);
		sh->pending = NULL;
	}
	if (last)
		snapshot_adopt(sh, last);
}

/* ---- ring set-up ---- */

static int ring_init(struct shard *sh)
{
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
	p.flags |= IORING_SETUP_CQSIZE;
	p.cq_entries = RING_ENTRIES * 4;
	int ret = io_uring_queue_init_params(RING_ENTRIES, &sh->ring, &p);
	if (ret == -EINVAL) {
		/* Older kernel: no SINGLE_ISSUER / DEFER_TASKRUN. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * 4;
		ret = io_uring_queue_init_params(RING_ENTRIES, &sh->ring, &p);
	}
	if (ret < 0)
		return ret;
	/* A registered ring fd spares the fd lookup of every io_uring_enter. */
	if (io_uring_register_ring_fd(&sh->ring) < 0)
		log_debug("shard", "shard %d: ring fd not registered", sh->id);
	else
		sh->ring_fd_registered = true;
	/* Batched waits need the kernel's minimum wait timeout (Linux 6.12). */
	sh->batch_wait_usec = sh->cfg->batch_wait_usec;
	if (sh->batch_wait_usec && !(p.features & IORING_FEAT_MIN_TIMEOUT)) {
		if (sh->id == 0)
			log_info("shard", "this kernel has no minimum wait timeout for io_uring "
					  "(Linux 6.12+): --batch-wait-usec is off");
		sh->batch_wait_usec = 0;
	}
	if (sh->cfg->splice_mode == SPLICE_MODE_URING) {
		/* IORING_OP_SPLICE runs in io-wq: keep its workers few and on
		 * this shard's CPU. */
		cpu_set_t set;
		unsigned int max[2] = {2, 2};
		CPU_ZERO(&set);
		CPU_SET(sh->cpu, &set);
		io_uring_register_iowq_aff(&sh->ring, sizeof(set), &set);
		io_uring_register_iowq_max_workers(&sh->ring, max);
	}

	sh->nbufs = sh->cfg->buf_count;
	size_t brsize = sizeof(struct io_uring_buf) * sh->nbufs;
	sh->br = mmap(NULL, brsize, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (sh->br == MAP_FAILED) {
		sh->br = NULL;
		return -ENOMEM;
	}
	struct io_uring_buf_reg reg = {
		.ring_addr = (uint64_t)(uintptr_t)sh->br, .ring_entries = sh->nbufs, .bgid = BGID};
	ret = io_uring_register_buf_ring(&sh->ring, &reg, 0);
	if (ret < 0)
		return ret;
	return shard_bufs_init(sh);
}

static void arm_accept(struct shard *sh, bool tls)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);
	io_uring_prep_multishot_accept(sqe, tls ? sh->listen_tls_fd : sh->listen_fd, NULL, NULL, 0);
	io_uring_sqe_set_data64(sqe, UD(sh, tls ? OP_ACCEPT_TLS : OP_ACCEPT));
	if (tls)
		sh->accepting_tls = true;
	else
		sh->accepting = true;
}

static void arm_wake(struct shard *sh)
{
	struct io_uring_sqe *sqe = shard_sqe(sh);
	io_uring_prep_read(sqe, sh->wake_fd, &sh->wake_val, sizeof(sh->wake_val), 0);
	io_uring_sqe_set_data64(sqe, UD(sh, OP_WAKE));
}

static void arm_tick(struct shard *sh)
{
	sh->tick_ts.tv_sec = 0;
	sh->tick_ts.tv_nsec = TICK_MS * 1000000LL;
	struct io_uring_sqe *sqe = shard_sqe(sh);
	io_uring_prep_timeout(sqe, &sh->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, UD(sh, OP_TICK));
}

static void update_date(struct shard *sh)
{
	time_t t = time(NULL);
	if (t == sh->date_sec)
		return;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(sh->date, sizeof(sh->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	sh->date_sec = t;
}

/* Starts the graceful stop: no more accepts; idle connections close; busy
 * ones close after their current response. */
static void shard_begin_stop(struct shard *sh)
{
	if (sh->stopping)
		return;
	sh->stopping = true;
	sh->stop_deadline = sh->now_ms + sh->cfg->shutdown_timeout_ms;
	if (sh->accepting) {
		struct io_uring_sqe *sqe = shard_sqe(sh);
		io_uring_prep_cancel64(sqe, UD(sh, OP_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, OP_IGNORE);
	}
	if (sh->accepting_tls) {
		struct io_uring_sqe *sqe = shard_sqe(sh);
		io_uring_prep_cancel64(sqe, UD(sh, OP_ACCEPT_TLS), 0);
		io_uring_sqe_set_data64(sqe, OP_IGNORE);
	}
	proxy_stop(sh);
}

static void on_accept(struct shard *sh, struct io_uring_cqe *cqe, bool tls)
{
	if (cqe->res >= 0) {
		if (sh->stopping) {
			close(cqe->res);
		} else {
			STAT_INC(sh, accepted);
			proxy_accept(sh, cqe->res, tls);
		}
	} else if (cqe->res != -ECANCELED && !sh->stopping) {
		log_warn("shard", "shard %d: accept: %s", sh->id, strerror(-cqe->res));
	}
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		int *fd = tls ? &sh->listen_tls_fd : &sh->listen_fd;
		if (tls)
			sh->accepting_tls = false;
		else
			sh->accepting = false;
		if (sh->stopping) {
			close(*fd);
			*fd = -1;
		} else {
			arm_accept(sh, tls);
		}
	}
}

static void dispatch(struct shard *sh, struct io_uring_cqe *cqe)
{
	uint64_t ud = cqe->user_data;
	void *ptr = (void *)(uintptr_t)(ud & ~OP_MASK);

	switch ((enum op_kind)(ud & OP_MASK)) {
	case OP_IGNORE:
		break;
	case OP_ACCEPT:
		on_accept(sh, cqe, false);
		break;
	case OP_ACCEPT_TLS:
		on_accept(sh, cqe, true);
		break;
	case OP_RECV:
		stream_on_recv(ptr, cqe);
		break;
	case OP_SEND:
		stream_on_send(ptr, cqe);
		break;
	case OP_CONNECT:
		proxy_on_connect(ptr, cqe->res);
		break;
	case OP_POLL:
	case OP_SPLICE: {
		struct stream *s = ptr;
		if (stream_op_done(s))
			break;
		if (!(s->flags & ST_F_CLOSING)) {
			splice_on_cqe(s, (int)(ud & OP_MASK), cqe->res);
			proxy_on_event(s);
		}
		break;
	}
	case OP_WAKE:
		queue_drain(sh);
		if (atomic_load(&sh->stop))
			shard_begin_stop(sh);
		arm_wake(sh);
		break;
	case OP_TICK:
		update_date(sh);
		shard_buf_trim(sh);
		atomic_store_explicit(&sh->heartbeat_ms, sh->now_ms, memory_order_relaxed);
		queue_drain(sh); /* a safety net: never wait for a wake-up that got lost */
		if (sh->pending)
			snapshot_adopt(sh, sh->pending);
		if (sh->stopping && sh->now_ms >= sh->stop_deadline)
			proxy_stop(sh); /* second call: closes every connection */
		arm_tick(sh);
		break;
	}
}

/* The completions the next wait asks for (--batch-wait-usec bounds the
 * wait). An idle shard has nothing to
 * gain from fewer wake-ups, and its requests would pay the wait: then every
 * completion wakes it at once. So does a shard with few requests in flight:
 * little load, or clients that wait for each answer before asking again,
 * whose round trips a batch would only lengthen. A busy shard with many
 * requests in flight has completions coming: then one wake-up serves a
 * batch, which costs a request at most --batch-wait-usec per pass through
 * the shard. A batch is never larger than the requests in flight: 16
 * clients that each wait for their answer would otherwise pay the whole wait
 * on every round trip, as 64 completions never come. */
unsigned shard_batch_want(unsigned inflight, bool busy)
{
	if (!busy || inflight < BATCH_INFLIGHT)
		return 1;
	return inflight < BATCH_MAX ? inflight : BATCH_MAX;
}

/* With hysteresis: a shard near the threshold does not switch at every
 * span; it stays busy down to four fifths of on_pct. */
bool shard_busy_after(bool busy, uint64_t busy_ns, uint64_t span_ns, unsigned on_pct)
{
	if (busy)
		return busy_ns * 500 >= span_ns * on_pct * 4;
	return busy_ns * 100 >= span_ns * on_pct;
}

/* The time the calling thread was busy: on a CPU, plus waiting for one
 * (run_delay, which also counts time throttled by a cgroup's CPU quota), from
 * /proc/thread-self/schedstat ("on_cpu_ns run_delay_ns slices"). A shard
 * that shares its CPU, or is held to part of one, is starved rather than
 * idle, and batches help it most. Without schedstat (a kernel without
 * CONFIG_SCHED_INFO): the CPU time alone. */
static uint64_t thread_busy_ns(struct shard *sh)
{
	if (sh->schedstat_fd >= 0) {
		char buf[96];
		ssize_t n = pread(sh->schedstat_fd, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = 0;
			char *end, *end2;
			uint64_t on_cpu = strtoull(buf, &end, 10);
			uint64_t delay = strtoull(end, &end2, 10);
			if (end != buf && end2 != end)
				return on_cpu + delay;
		}
		/* Not what it should be: the CPU time from now on (busy_observe
		 * takes a new baseline when the count goes back). */
		close(sh->schedstat_fd);
		sh->schedstat_fd = -1;
	}
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* Called after each wait with the monotonic clock: once a span of at least
 * BUSY_SPAN_NS has passed since the last measure (up to the 100 ms tick
 * after an idle wait), the share of that span the shard's thread was busy
 * tells whether batches are on. That time includes the kernel's work for
 * it: most of the sending happens inside the ring's submit. Requests held
 * long at their upstreams (long polls, slow backends) count as in flight
 * without keeping the shard busy: batches then stay off, and other requests
 * never wait out a window for the few completions that trickle in. One
 * clock read a pass, one pread a span. */
static void busy_observe(struct shard *sh, uint64_t ns)
{
	uint64_t span = ns - sh->busy_since_ns;
	if (span < BUSY_SPAN_NS)
		return;
	uint64_t busy = thread_busy_ns(sh);
	if (busy >= sh->busy_ns)
		sh->busy = shard_busy_after(sh->busy, busy - sh->busy_ns, span, sh->cfg->batch_busy_pct);
	sh->busy_since_ns = ns;
	sh->busy_ns = busy;
}

/* Submits what is queued and waits for completions: for one, or, when
 * shard_batch_want asks for more, for that many or batch_wait_usec, whichever comes
 * first (then for one). The kernel (DEFER_TASKRUN, Linux 6.12's minimum wait timeout)
 * then wakes the shard once for a batch instead of once per completion: each
 * wake-up costs this CPU a context switch and the CPU whose packet caused
 * it an inter-processor interrupt. liburing 2.3 has no helper for this wait:
 * the submission queue is flushed here as io_uring_submit does. */
static void ring_wait(struct shard *sh)
{
	unsigned want = shard_batch_want(sh->inflight, sh->busy);
	if (want <= 1 || !sh->batch_wait_usec || io_uring_cq_ready(&sh->ring)) {
		io_uring_submit_and_wait(&sh->ring, 1);
		return;
	}
	struct io_uring_sq *sq = &sh->ring.sq;
	unsigned tail = sq->sqe_tail;
	if (sq->sqe_head != tail) {
		sq->sqe_head = tail;
		IO_URING_WRITE_ONCE(*sq->ktail, tail);
	}
	unsigned to_submit = tail - IO_URING_READ_ONCE(*sq->khead);
	/* After the minimum wait the kernel returns with what completed, or
	 * waits for the first completion until ts: without a ts it would return
	 * empty-handed every batch_wait_usec while requests wait on slow
	 * upstreams. The 100 ms tick wakes the shard before ts anyway. */
	static const struct __kernel_timespec ts = {.tv_sec = 1};
	struct io_uring_getevents_arg arg = {0};
	arg.pad = sh->batch_wait_usec; /* min_wait_usec since Linux 6.12 */
	arg.ts = (uint64_t)(uintptr_t)&ts;
	unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
	int fd = sh->ring.ring_fd;
	if (sh->ring_fd_registered) {
		flags |= IORING_ENTER_REGISTERED_RING;
		fd = sh->ring.enter_ring_fd;
	}
	int ret = io_uring_enter2(fd, to_submit, want, flags,
				  (sigset_t *)&arg, sizeof(arg));
	if (ret == -EINVAL) {
		log_warn("shard", "shard %d: the kernel refuses batched waits (%s): "
				  "--batch-wait-usec is off", sh->id, strerror(-ret));
		sh->batch_wait_usec = 0;
	}
}

static void pin_cpu(struct shard *sh)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(sh->cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
		log_warn("shard", "shard %d: cannot pin to CPU %d", sh->id, sh->cpu);
}

static void *shard_main(void *arg)
{
	struct shard *sh = arg;
	char name[16];

	snprintf(name, sizeof(name), "shard-%d", sh->id);
	pthread_setname_np(pthread_self(), name);
	pin_cpu(sh);
	int ret = ring_init(sh);
	if (ret < 0) {
		atomic_store(&sh->start_status, ret);
		return NULL;
	}
	sh->schedstat_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	sh->busy_since_ns = now_ns();
	sh->busy_ns = thread_busy_ns(sh);
	sh->busy = sh->cfg->batch_busy_pct == 0; /* 0: always busy */
	sh->now_ms = sh->busy_since_ns / 1000000;
	for (int c = 0; c < TIMER_LISTS; c++)
		sh->timers[c].head.next = sh->timers[c].head.prev = &sh->timers[c].head;
	sh->conns.next = sh->conns.prev = &sh->conns;
	http1_settings_init(&sh->req_settings);
	http1_settings_init(&sh->resp_settings);
	update_date(sh);
	atomic_store(&sh->heartbeat_ms, sh->now_ms);
	arm_accept(sh, false);
	if (sh->listen_tls_fd >= 0)
		arm_accept(sh, true);
	arm_wake(sh);
	arm_tick(sh);
	atomic_store(&sh->start_status, 1);

	for (;;) {
		shard_buf_refill(sh);
		ring_wait(sh);
		uint64_t ns = now_ns();
		sh->now_ms = ns / 1000000;
		busy_observe(sh, ns);
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&sh->ring, head, cqe)
		{
			dispatch(sh, cqe);
			n++;
		}
		io_uring_cq_advance(&sh->ring, n);
		timers_run(sh);
		shard_run_kicks(sh);
		shard_reap(sh);
		if (sh->stopping && !sh->nstreams && !sh->accepting && !sh->accepting_tls)
			break;
	}
	io_uring_submit(&sh->ring); /* the closes of the last streams */
	io_uring_queue_exit(&sh->ring);
	if (sh->schedstat_fd >= 0)
		close(sh->schedstat_fd);
	if (sh->cfg->tls_ops && sh->cfg->tls_ops->thread_exit)
		sh->cfg->tls_ops->thread_exit();
	blk_cache_drain();
	return NULL;
}

/* ---- group ---- */

/* Explains why io_uring is unusable and how to fix it. */
static int probe_io_uring(void)
{
	struct io_uring ring;
	int ret = io_uring_queue_init(4, &ring, 0);
	if (ret == 0) {
		io_uring_queue_exit(&ring);
		return 0;
	}
	if (ret == -EPERM || ret == -ENOSYS || ret == -EACCES) {
		FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
		int disabled = 0;
		if (f) {
			if (fscanf(f, "%d", &disabled) != 1)
				disabled = 0;
			fclose(f);
		}
		if (disabled)
			log_error("shard",
				  "cannot create an io_uring ring: %s; kernel.io_uring_disabled=%d "
				  "forbids it: run `sysctl -w kernel.io_uring_disabled=0`",
				  strerror(-ret), disabled);
		else
			log_error("shard",
				  "cannot create an io_uring ring: %s; a seccomp profile blocks "
				  "io_uring (container runtimes' default profiles do): run with the "
				  "profile in deploy/ that allows io_uring_setup, io_uring_enter and "
				  "io_uring_register",
				  strerror(-ret));
	} else {
		log_error("shard", "cannot create an io_uring ring: %s", strerror(-ret));
	}
	return ret;
}

/* A SO_REUSEPORT listener of one shard, or -errno (logged with the flag to
 * change). */
static int shard_listen(const struct core_config *cfg, uint16_t port, const char *flag)
{
	int fd = net_listen(cfg->bind, port, true, 4096);
	if (fd < 0)
		log_error("shard", "cannot listen on %s:%u: %s (is another process using the port? "
			  "use --bind/%s)",
			  cfg->bind, port, strerror(-fd), flag);
	return fd;
}

struct shard_group *shard_group_start(const struct core_config *cfg)
{
	cpu_set_t allowed;
	int cpus[CPU_SETSIZE], ncpus = 0;

	if (probe_io_uring() < 0)
		return NULL;
	if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0) {
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &allowed))
				cpus[ncpus++] = c;
	}
	if (!ncpus)
		cpus[ncpus++] = 0;

	struct shard_group *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->cfg = cfg;
	g->n = cfg->nshards;
	g->shards = aligned_alloc(64, sizeof(struct shard) * (size_t)g->n);
	if (!g->shards) {
		free(g);
		return NULL;
	}
	memset(g->shards, 0, sizeof(struct shard) * (size_t)g->n);
	for (int i = 0; i < g->n; i++) {
		struct shard *sh = &g->shards[i];
		sh->id = i;
		sh->cpu = cpus[i % ncpus];
		sh->cfg = cfg;
		sh->listen_tls_fd = -1;
		if (cfg->https_port &&
		    (sh->listen_tls_fd = shard_listen(cfg, cfg->https_port, "--https-port")) < 0)
			goto err;
		if ((sh->listen_fd = shard_listen(cfg, cfg->http_port, "--http-port")) < 0)
			goto err;
		sh->wake_fd = eventfd(0, EFD_CLOEXEC);
		if (sh->wake_fd < 0 || spsc_init(&sh->queue, 64) < 0)
			goto err;
		uint64_t seed[2];
		if (getrandom(seed, sizeof(seed), 0) != sizeof(seed)) {
			seed[0] = (uint64_t)now_ms() * 0x9E3779B97F4A7C15ull;
			seed[1] = (uint64_t)getpid() ^ (uint64_t)i;
		}
		sh->rng[0] = seed[0] | 1;
		sh->rng[1] = seed[1] | 2;
		balancer_init(&sh->bal, cfg->load_balance, cfg->max_fails, cfg->fail_timeout_ms,
			      seed[0] ^ seed[1]);
	}
	for (int i = 0; i < g->n; i++) {
		if (pthread_create(&g->shards[i].thread, NULL, shard_main, &g->shards[i])) {
			log_error("shard", "cannot start shard thread %d", i);
			exit(1);
		}
	}
	for (int i = 0; i < g->n; i++) {
		int st;
		while ((st = atomic_load(&g->shards[i].start_status)) == 0)
			usleep(1000);
		if (st < 0) {
			log_error("shard", "shard %d: cannot set up its ring: %s", i, strerror(-st));
			exit(1);
		}
	}
	log_info("shard", "%d shard(s) listening on %s:%u", g->n, cfg->bind, cfg->http_port);
	return g;
err:
	for (int i = 0; i < g->n; i++) {
		if (g->shards[i].listen_fd > 0)
			close(g->shards[i].listen_fd);
	}
	free(g->shards);
	free(g);
	return NULL;
}

static void shard_wake(struct shard *sh)
{
	uint64_t one = 1;
	ssize_t w = write(sh->wake_fd, &one, sizeof(one));
	(void)w;
}

void shard_group_publish(struct shard_group *g, struct snapshot *s)
{
	for (int i = 0; i < g->n; i++) {
		struct shard *sh = &g->shards[i];
		snapshot_acquire(s);
		while (!spsc_push(&sh->queue, s))
			usleep(1000); /* the shard drains the queue on every wake-up */
		shard_wake(sh);
	}
	snapshot_release(s);
}

bool shard_group_healthy(struct shard_group *g)
{
	uint64_t now = now_ms();
	for (int i = 0; i < g->n; i++) {
		uint64_t hb = atomic_load_explicit(&g->shards[i].heartbeat_ms, memory_order_relaxed);
		if (now > hb + 5000)
			return false;
	}
	return true;
}

bool shard_group_ready(struct shard_group *g)
{
	if (atomic_load(&g->stopping))
		return false; /* draining: let load balancers move away */
	for (int i = 0; i < g->n; i++)
		if (!atomic_load(&g->shards[i].generation))
			return false;
	return true;
}

void shard_group_stats(struct shard_group *g, struct shard_stats *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < g->n; i++) {
		struct shard_stats *s = &g->shards[i].stats;
		out->accepted += __atomic_load_n(&s->accepted, __ATOMIC_RELAXED);
		out->requests += __atomic_load_n(&s->requests, __ATOMIC_RELAXED);
		out->responses_local += __atomic_load_n(&s->responses_local, __ATOMIC_RELAXED);
		out->upstream_connects += __atomic_load_n(&s->upstream_connects, __ATOMIC_RELAXED);
		out->upstream_errors += __atomic_load_n(&s->upstream_errors, __ATOMIC_RELAXED);
		out->active_conns += __atomic_load_n(&s->active_conns, __ATOMIC_RELAXED);
	}
}

void shard_group_stop(struct shard_group *g)
{
	atomic_store(&g->stopping, true);
	for (int i = 0; i < g->n; i++) {
		atomic_store(&g->shards[i].stop, true);
		shard_wake(&g->shards[i]);
	}
	for (int i = 0; i < g->n; i++) {
		struct shard *sh = &g->shards[i];
		pthread_join(sh->thread, NULL);
		struct snapshot *s;
		while ((s = spsc_pop(&sh->queue)))
			snapshot_release(s);
		for (unsigned r = 0; r < sizeof(sh->refs) / sizeof(sh->refs[0]); r++)
			if (sh->refs[r].snap)
				snapref_clear(&sh->refs[r]);
		balancer_deinit(&sh->bal);
		if (sh->pending)
			snapshot_release(sh->pending);
		spsc_deinit(&sh->queue);
		close(sh->wake_fd);
		free(sh->bufs);
		free(sh->bufref);
		free(sh->scratch);
		free(sh->plain_free);
		free(sh->ring_free);
		shard_txq_free_all(sh);
		if (sh->br)
			munmap(sh->br, sizeof(struct io_uring_buf) * sh->nbufs);
	}
	free(g->shards);
	free(g);
}
