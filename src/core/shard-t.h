/* shard-t.h - types private to the data plane: shard, stream, connection.
 *
 * A shard owns its ring, listener, provided buffers, connections, upstream
 * pools and counters; nothing here is touched by another thread except the
 * fields marked shared. */
#ifndef RINGRESS_SHARD_T_H
#define RINGRESS_SHARD_T_H

#include "core/balancer.h"
#include "core/config-t.h"
#include "core/http1.h"
#include "core/shard.h"
#include "core/snapshot-t.h"
#include "core/spsc.h"

#include <liburing.h>
#include <llhttp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* Operation kinds, kept in the low 4 bits of SQE user_data. */
enum op_kind {
	OP_IGNORE = 0, /* cancels, linked timeouts */
	OP_ACCEPT,
	OP_RECV,
	OP_SEND,
	OP_CONNECT,
	OP_WAKE,
	OP_TICK,
	OP_ACCEPT_TLS, /* the HTTPS listener */
	OP_POLL,   /* readiness for a splice(2) */
	OP_SPLICE, /* IORING_OP_SPLICE */
};
#define OP_MASK 15ull /* conn, upstream and shard are at least 16-byte aligned */
#define UD(ptr, op) ((uint64_t)(uintptr_t)(ptr) | (uint64_t)(op))

/* Timer classes: each has one duration, so each list stays sorted. */
enum timer_class {
	T_CLIENT_HEADER = 0,
	T_CLIENT_IDLE,    /* keep-alive between requests */
	T_CLIENT_BODY,    /* stalled client read or write */
	T_LINGER,         /* lingering close */
	T_PROXY_READ,
	T_PROXY_SEND,
	T_UPSTREAM_IDLE,
	T_NCLASSES,
};

struct timer {
	struct timer *prev, *next;
	uint64_t deadline; /* ms, CLOCK_MONOTONIC */
	int8_t cls;        /* -1 when not armed */
};

/* Timers of one duration, in deadline order. */
struct timer_list {
	struct timer head; /* sentinel of a circular list */
	uint64_t duration_ms;
};
#define TIMER_LISTS 16

/* One received chunk in a provided buffer. */
struct rxchunk {
	uint32_t off, len;
	uint16_t bid;
};

/* One piece of data to send: a slice of a provided buffer (bid >= 0), a
 * heap block to free after sending (heap), or static memory. */
struct txitem {
	char *base;
	uint32_t len;
	int32_t bid;
	char *heap;
	uint32_t cap; /* bytes usable from base (0: none), so that small data can be appended */
	uint32_t heap_size; /* of heap, for blk_free (0: unknown) */
};

#define TX_MAX 8

/* A send queue: only connections with something to send hold one. The
 * counts and the first items share the first cache line (queues start on
 * one: aligned_alloc in txq_push), so one send of one piece touches no
 * other; iov and msg are filled only for a sendmsg. */
struct txq {
	uint8_t n, sending;
	struct txq *next_free;
	struct txitem tx[TX_MAX];
	struct iovec iov[TX_MAX];
	struct msghdr msg;
};
#define RX_HIGH 4 /* stop the multishot recv at this many queued chunks */

enum stream_kind { STREAM_CLIENT, STREAM_UPSTREAM };

#define ST_F_RX_ARMED (1u << 0)  /* multishot recv outstanding */
#define ST_F_RX_CANCEL (1u << 1) /* its cancel was requested */
#define ST_F_EOF (1u << 2)       /* peer closed its side */
#define ST_F_SENDING (1u << 3)
#define ST_F_CLOSING (1u << 4)
#define ST_F_STARVED (1u << 5)   /* recv stopped on ENOBUFS */
#define ST_F_CONNECTED (1u << 6) /* upstream: connect done */
#define ST_F_ERROR (1u << 7)     /* socket error seen (err holds it) */
#define ST_F_POLLING (1u << 8)   /* a poll for a splice is armed */
#define ST_F_SPLICING (1u << 9)  /* an IORING_OP_SPLICE is in flight */
#define ST_F_RX_PAUSED (1u << 10) /* recv stopped on purpose (splice) */
#define ST_F_ONESHOT (1u << 11)   /* one recv at a time: exact back-pressure */
#define ST_F_RX_MULTI (1u << 12)  /* the armed recv is multishot */
#define ST_F_KICKED (1u << 13)    /* on the shard's kicked list */

/* One socket and its queues. Embedded first in struct conn / upstream. */
struct stream {
	struct shard *sh;
	int fd;
	uint8_t kind;
	uint16_t flags;
	uint16_t inflight; /* SQEs whose final CQE is still due */
	int err;

	struct rxchunk *rx; /* ring of rx_cap (power of two) chunks */
	uint16_t rx_head, rx_n, rx_cap;
	struct rxchunk rx_inline[2];

	struct txq *txq; /* taken from the shard while data waits to be sent */
	struct txq *ctq; /* under TLS: ciphertext, what the socket sends */

	struct timer timer;
	struct stream *starved_next;
	struct stream *dead_next;
	struct stream *kick_next;
	void *tls; /* transport state (TLS) of a client connection, or NULL */
};

/* A snapshot as used by one shard: requests count their use locally. */
struct snapref {
	struct snapshot *snap;
	uint32_t users;
	struct bal_view view; /* endpoint states and round-robin positions */
	bool current;
};

enum rq_state { RQ_HEAD = 0, RQ_BODY, RQ_DONE };
enum rs_state { RS_NONE = 0, RS_HEAD, RS_BODY, RS_DONE };

#define C_F_KEEPALIVE (1u << 0)   /* client connection may serve another request */
#define C_F_HEAD (1u << 1)        /* request method is HEAD */
#define C_F_SENT (1u << 2)        /* response bytes queued to the client */
#define C_F_CONTINUE (1u << 3)    /* ringress answered 100-continue */
#define C_F_DECHUNK (1u << 4)     /* HTTP/1.0 client, chunked response */
#define C_F_LINGER (1u << 5)      /* draining input before close */
#define C_F_CLOSE_AFTER (1u << 6) /* close once the response is sent */
#define C_F_HTTP10 (1u << 7)
#define C_F_KICKED (1u << 8)      /* request body parser primed */
#define C_F_RESP_KICKED (1u << 9)
#define C_F_REPLAYABLE (1u << 10) /* request head kept: may retry on a fresh upstream */
#define C_F_RETRIED (1u << 11)    /* stale keep-alive retry done */
#define C_F_UPGRADE (1u << 12)    /* request asks for a protocol upgrade */
#define C_F_TUNNEL (1u << 13)     /* upgraded: raw bytes both ways */
#define C_F_SPLICE_PENDING (1u << 14) /* response body will move by splice */
#define C_F_NOTIFIED (1u << 15)   /* TLS close_notify queued */
#define C_F_CLIENT_CLOSE (1u << 16) /* the client asked for the close; its request was read whole */
#define C_F_BIG_BODY (1u << 17)   /* Content-Length beyond the replay list: fresh upstreams only */

#define REPLAY_MAX 4 /* body chunks kept to resend a request on another connection */

/* A body chunk kept for a replay: a slice of a provided buffer, or (heap)
 * the conn's own copy of the pieces of a body sent in more pieces than the
 * list holds (malloc'd, REPLAY_MAX buffers' worth). */
struct replay_item {
	char *base;
	uint32_t len;
	uint16_t bid;
	bool heap;
};

struct upstream;

/* A client connection and the request it is serving. */
struct conn {
	struct stream s;
	struct conn *prev, *next; /* shard's list of connections */
	struct upstream *up;
	uint32_t flags;
	uint8_t rq, rs;
	uint32_t nreq;
	uint64_t body_bytes;
	llhttp_t parser;
	struct http1_head head;
	struct snapref *sref;
	const struct snap_backend *backend;
	char *fwd_head; /* request head sent upstream, kept for a replay */
	uint32_t fwd_len, fwd_cap;
	/* Body sent so far, while it fits: REPLAY_MAX items, allocated by the
	 * first request with a body (idle connections stay small). */
	struct replay_item *replay;
	uint8_t nreplay;
	uint8_t ntried;
	uint32_t tried[4]; /* endpoint indices already tried */
	uint32_t hash_key; /* upstream-hash-by key of the request */
	uint64_t tunnel_idle_ms;
	struct splice_state *sp; /* response body moving by splice */
	char peer_ip[48];
};

/* A connection to one endpoint; idle in its shard's pool or serving c. */
struct upstream {
	struct stream s;
	struct upstream *pool_prev, *pool_next;
	struct conn *c;
	uint32_t nreq;
	uint32_t hash;
	bool idle, reused, reusable;
	bool inflight; /* counted in the shard's inflight (a request, not a tunnel) */
	bool answered; /* sent a 1xx for the request in flight: it has the request */
	llhttp_t parser;
	struct http1_head head;
	struct http1_info info;
	struct snap_endpoint ep;
	struct ep_state *st; /* counted in st->active while attached */
	uint64_t t_start;    /* ms when the request was attached */
	struct __kernel_timespec connect_ts;
};

#define POOL_BUCKETS 256

struct shard {
	int id;
	int cpu;
	const struct core_config *cfg;
	struct io_uring ring;
	pthread_t thread;
	int listen_fd;
	int listen_tls_fd; /* -1 without an HTTPS port */
	bool accepting_tls;
	uint32_t nplain;     /* buffers after the ring's, for decrypted data */
	uint16_t *plain_free; /* stack of free plaintext buffer ids */
	uint32_t nplain_free;
	int wake_fd;
	uint64_t wake_val;
	bool ring_fd_registered;
	uint32_t batch_wait_usec; /* --batch-wait-usec, 0 when the kernel lacks it */
	/* How busy the shard is (see busy_observe): batches only when busy. */
	uint64_t busy_since_ns;   /* start of the span being measured */
	uint64_t busy_ns;         /* the thread's busy time at busy_since_ns */
	int schedstat_fd;         /* /proc/thread-self/schedstat, or -1 */
	bool busy;
	struct __kernel_timespec tick_ts;

	/* provided buffers */
	struct io_uring_buf_ring *br;
	char *bufs;
	size_t buf_stride; /* buf_size plus a cache line: see shard_bufs_init */
	uint8_t *bufref;
	uint32_t nbufs;
	/* The ring holds at most br_depth free buffers; the rest wait on a stack,
	 * the most recently freed on top (see shard_buf_refill). */
	uint32_t br_avail;  /* buffers in the ring, not yet taken by the kernel */
	uint32_t br_depth;
	uint64_t br_dry_ms; /* when a receive last found the ring empty */
	bool br_grown;      /* the depth doubled since the last refill */
	uint16_t *ring_free; /* stack of free ring buffer ids */
	uint32_t nring_free;
	struct stream *starved;
	struct stream *kicked; /* streams owed an event after this batch */
	struct txq *free_txq; /* spare send queues */
	struct stream *dead; /* closed with nothing in flight: freed after the batch */

	uint64_t now_ms;
	char date[40]; /* IMF-fixdate, refreshed every second */
	time_t date_sec;
	uint64_t rng[2];
	char *scratch; /* normalised path of the request being routed */
	uint32_t scratch_cap;

	struct timer_list timers[TIMER_LISTS];
	struct conn conns; /* sentinel of the connection list */
	uint32_t nconns, nstreams;
	uint32_t inflight; /* requests given to an upstream endpoint, not finished */
	struct upstream *pool[POOL_BUCKETS];
	uint32_t pool_idle; /* connections in the pool */
	uint32_t free_txqs;

	struct balancer bal;
	struct snapref refs[8];
	struct snapref *cur;
	struct snapshot *pending; /* newest snapshot not adopted yet */

	bool stopping, accepting;
	uint64_t stop_deadline;

	llhttp_settings_t req_settings, resp_settings;

	/* shared with other threads */
	struct spsc queue;
	_Atomic bool stop;
	_Atomic uint64_t heartbeat_ms;
	_Atomic uint64_t generation;
	_Atomic int start_status; /* 0 starting, 1 running, -errno failed */
	struct shard_stats stats; /* written by the shard, read relaxed */
};

#define STAT_INC(sh, f) __atomic_store_n(&(sh)->stats.f, (sh)->stats.f + 1, __ATOMIC_RELAXED)
#define STAT_SET(sh, f, v) __atomic_store_n(&(sh)->stats.f, (v), __ATOMIC_RELAXED)

/* A response body moved upstream socket -> pipe -> client socket. */
struct splice_state {
	int pipe[2];
	uint64_t left;    /* bytes still to read from the upstream */
	uint32_t in_pipe; /* bytes read and not yet written */
	uint32_t cap;     /* pipe capacity */
	int32_t op_len;   /* IORING_OP_SPLICE in flight: its direction (+in, -out) */
	bool started;
};

/* splice.c */
bool splice_wanted(const struct shard *sh, const llhttp_t *resp, bool head_req);
int splice_start(struct conn *c);
int splice_pump(struct conn *c);
void splice_on_cqe(struct stream *s, int op, int res);
void splice_free(struct conn *c);

/* stream.c */
void stream_init(struct stream *s, struct shard *sh, int fd, enum stream_kind kind);
void stream_want_rx(struct stream *s);
bool stream_rx_empty(const struct stream *s);
struct rxchunk *stream_rx_front(struct stream *s);
/* Bytes received and not yet used. */
uint64_t stream_rx_bytes(const struct stream *s);
char *stream_chunk_data(const struct stream *s, const struct rxchunk *c);
void stream_rx_consume(struct stream *s, uint32_t n);
bool stream_tx_room(const struct stream *s);
bool stream_tx_idle(const struct stream *s);
int stream_tx_push(struct stream *s, char *base, uint32_t len, int32_t bid, char *heap);
int stream_tx_push_heap(struct stream *s, char *heap, uint32_t len, uint32_t cap);
int stream_tx_push_buf(struct stream *s, char *buf, uint32_t len, uint32_t cap);
/* buf (size bytes) was queued by stream_tx_push_buf and its owner is going
 * away: if s still holds a piece of it (unsent, or a send in flight), s
 * frees it once sent or dropped. Returns true then; false when s no longer
 * refers to buf. */
bool stream_tx_adopt(struct stream *s, char *buf, uint32_t size);
void stream_flush(struct stream *s);
void stream_close(struct stream *s);
void shard_reap(struct shard *sh);
void stream_kick(struct stream *s);
void shard_run_kicks(struct shard *sh);
void shard_txq_free_all(struct shard *sh);
void stream_on_recv(struct stream *s, struct io_uring_cqe *cqe);
void stream_on_send(struct stream *s, struct io_uring_cqe *cqe);
void stream_drop_rx(struct stream *s);
bool stream_op_done(struct stream *s);
int shard_plain_buf(struct shard *sh);
int shard_bufs_init(struct shard *sh);
void shard_buf_taken(struct shard *sh, uint16_t bid);
void shard_buf_release(struct shard *sh, uint16_t bid);
void shard_buf_refill(struct shard *sh);
void shard_buf_ran_dry(struct shard *sh);
void shard_buf_trim(struct shard *sh);
#define BUF_DEPTH_MIN 128u /* buffers the ring holds at least (fewer if the pool is smaller) */
#define BUF_TRIM_MS 10000u
static inline char *shard_buf(const struct shard *sh, uint32_t bid)
{
	return sh->bufs + (size_t)bid * sh->buf_stride;
}
struct io_uring_sqe *shard_sqe(struct shard *sh);

/* timers (shard.c) */
void timer_set(struct shard *sh, struct timer *t, enum timer_class cls);
void timer_set_ms(struct shard *sh, struct timer *t, enum timer_class cls, uint64_t ms);
void timer_del(struct timer *t);

/* proxy.c: events delivered by stream.c and shard.c */
void proxy_accept(struct shard *sh, int fd, bool tls);
void proxy_on_event(struct stream *s);
void proxy_on_connect(struct upstream *u, int res);
void proxy_on_timeout(struct stream *s, enum timer_class cls);
void proxy_on_closed(struct stream *s);
void proxy_stop(struct shard *sh);
void proxy_pool_flush(struct shard *sh);
void snapref_put(struct shard *sh, struct snapref *r);

#endif
