/* stream.c - one socket on a shard's ring: multishot recv into provided
 * buffers with back-pressure, ordered zero-copy sends, and closing through
 * cancellation (memory named in an SQE lives until its CQE). */
#include "core/blkcache.h"
#include "core/log.h"
#include "core/shard-t.h"

#include <errno.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BGID 1
#define TLS_CHUNK 32768 /* ciphertext block moved from the transport */

static void tls_input(struct stream *s, uint16_t bid, uint32_t len);

/* Returns a free SQE, submitting pending ones first when the SQ is full. */
struct io_uring_sqe *shard_sqe(struct shard *sh)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);
	while (!sqe) {
		io_uring_submit(&sh->ring);
		sqe = io_uring_get_sqe(&sh->ring);
	}
	return sqe;
}

void stream_init(struct stream *s, struct shard *sh, int fd, enum stream_kind kind)
{
	memset(s, 0, sizeof(*s));
	s->sh = sh;
	s->fd = fd;
	s->kind = (uint8_t)kind;
	s->rx = s->rx_inline;
	s->rx_cap = 2;
	s->timer.cls = -1;
	sh->nstreams++;
}

/* The shard's buffers, once sh->br (nbufs entries) is set up: the ring's,
 * then (with TLS) as many for decrypted data, which the shard hands out
 * itself; one id space for both. The ring gets its first br_depth. */
int shard_bufs_init(struct shard *sh)
{
	sh->nplain = sh->cfg->https_port ? sh->nbufs : 0;
	size_t total = (size_t)sh->nbufs + sh->nplain;
	/* Buffers start a cache line past a multiple of 16 KiB: at a stride of
	 * exactly 16 KiB the first lines of every buffer compete for the same
	 * few cache sets. */
	sh->buf_stride = sh->cfg->buf_size + 64;
	sh->bufs = malloc(total * sh->buf_stride);
	sh->bufref = calloc(total, 1);
	sh->plain_free = calloc(sh->nplain ? sh->nplain : 1, sizeof(uint16_t));
	sh->ring_free = calloc(sh->nbufs ? sh->nbufs : 1, sizeof(uint16_t));
	if (!sh->bufs || !sh->bufref || !sh->plain_free || !sh->ring_free)
		return -ENOMEM;
	for (uint32_t i = 0; i < sh->nplain; i++)
		sh->plain_free[sh->nplain_free++] = (uint16_t)(sh->nbufs + sh->nplain - 1 - i);
	for (uint32_t i = 0; i < sh->nbufs; i++)
		sh->ring_free[sh->nring_free++] = (uint16_t)(sh->nbufs - 1 - i);
	sh->br_depth = sh->nbufs < BUF_DEPTH_MIN ? sh->nbufs : BUF_DEPTH_MIN;
	io_uring_buf_ring_init(sh->br);
	shard_buf_refill(sh);
	return 0;
}

/* The kernel took buffer bid from the ring for a receive: one reference. */
void shard_buf_taken(struct shard *sh, uint16_t bid)
{
	sh->bufref[bid] = 1;
	sh->br_avail--;
}

/* A buffer nothing refers to any more goes back to its free stack: ring
 * buffers return to the ring from there (shard_buf_refill), buffers of
 * decrypted data are handed out by shard_plain_buf. */
void shard_buf_release(struct shard *sh, uint16_t bid)
{
	if (--sh->bufref[bid])
		return;
	if (bid >= sh->nbufs)
		sh->plain_free[sh->nplain_free++] = bid;
	else
		sh->ring_free[sh->nring_free++] = bid;
}

/* Tops the ring up to br_depth buffers, most recently freed first, before
 * the shard enters the kernel. The kernel takes ring buffers in order, so a
 * buffer comes back into use after the br_depth others in the ring: a
 * shallow ring keeps the few buffers in use hot in the cache, where a ring
 * of every free buffer cycles through all of them (16 MiB by default) and
 * each receive writes to lines long evicted. Its depth adapts to the
 * receives one pass through the kernel completes: see shard_buf_ran_dry. */
void shard_buf_refill(struct shard *sh)
{
	int n = 0;
	sh->br_grown = false;
	while (sh->br_avail < sh->br_depth && sh->nring_free) {
		uint16_t bid = sh->ring_free[--sh->nring_free];
		io_uring_buf_ring_add(sh->br, shard_buf(sh, bid), sh->cfg->buf_size, bid,
				      io_uring_buf_ring_mask(sh->nbufs), n++);
		sh->br_avail++;
	}
	if (n)
		io_uring_buf_ring_advance(sh->br, n);
	if (!sh->br_avail)
		return;
	/* Streams that stopped on ENOBUFS can read again (also those whose
	 * ENOBUFS came after the refill that filled the ring). */
	while (sh->starved) {
		struct stream *s = sh->starved;
		sh->starved = s->starved_next;
		s->starved_next = NULL;
		s->flags &= (uint16_t)~ST_F_STARVED;
		stream_want_rx(s);
	}
}

/* A receive found the ring empty (ENOBUFS): a pass through the kernel
 * completed more receives than the ring held. Its stream waits on the
 * starved list for the next refill, and the ring holds twice as many from
 * now on. */
void shard_buf_ran_dry(struct shard *sh)
{
	sh->br_dry_ms = sh->now_ms;
	/* Once per refill: the receives of one pass find the ring empty
	 * together, and one doubling is the answer to all of them. */
	if (sh->br_depth >= sh->nbufs || sh->br_grown)
		return;
	sh->br_grown = true;
	sh->br_depth = sh->br_depth * 2 < sh->nbufs ? sh->br_depth * 2 : sh->nbufs;
	log_debug("stream", "shard %d: the provided buffer ring ran dry: it holds up to %u "
			    "buffers from now on", sh->id, sh->br_depth);
}

/* Called every tick: BUF_TRIM_MS after the ring last ran dry, halves its
 * depth (not below BUF_DEPTH_MIN), so that a burst does not cost the cache
 * for good. */
void shard_buf_trim(struct shard *sh)
{
	if (sh->br_depth <= BUF_DEPTH_MIN || sh->now_ms - sh->br_dry_ms < BUF_TRIM_MS)
		return;
	sh->br_depth /= 2;
	sh->br_dry_ms = sh->now_ms;
}

/* A free buffer for decrypted data (one reference), or -1. */
int shard_plain_buf(struct shard *sh)
{
	if (!sh->nplain_free)
		return -1;
	uint16_t bid = sh->plain_free[--sh->nplain_free];
	sh->bufref[bid] = 1;
	return bid;
}

bool stream_rx_empty(const struct stream *s)
{
	return s->rx_n == 0;
}

struct rxchunk *stream_rx_front(struct stream *s)
{
	return s->rx_n ? &s->rx[s->rx_head] : NULL;
}

char *stream_chunk_data(const struct stream *s, const struct rxchunk *c)
{
	return shard_buf(s->sh, c->bid) + c->off;
}

uint64_t stream_rx_bytes(const struct stream *s)
{
	uint64_t n = 0;
	for (uint16_t i = 0; i < s->rx_n; i++)
		n += s->rx[(s->rx_head + i) & (s->rx_cap - 1)].len;
	return n;
}

/* Marks n bytes of the front chunk as used; a used-up chunk goes back. */
void stream_rx_consume(struct stream *s, uint32_t n)
{
	struct rxchunk *c = &s->rx[s->rx_head];
	c->off += n;
	c->len -= n;
	if (c->len)
		return;
	shard_buf_release(s->sh, c->bid);
	s->rx_head = (uint16_t)((s->rx_head + 1) & (s->rx_cap - 1));
	s->rx_n--;
}

/* Drops everything received and not yet used. */
void stream_drop_rx(struct stream *s)
{
	while (s->rx_n)
		stream_rx_consume(s, s->rx[s->rx_head].len);
}

static int rx_push(struct stream *s, uint16_t bid, uint32_t len)
{
	if (s->rx_n == s->rx_cap) {
		uint16_t cap = (uint16_t)(s->rx_cap * 2);
		struct rxchunk *n = malloc(sizeof(*n) * cap);
		if (!n)
			return -ENOMEM;
		for (uint16_t i = 0; i < s->rx_n; i++)
			n[i] = s->rx[(s->rx_head + i) & (s->rx_cap - 1)];
		if (s->rx != s->rx_inline)
			free(s->rx);
		s->rx = n;
		s->rx_cap = cap;
		s->rx_head = 0;
	}
	struct rxchunk *c = &s->rx[(s->rx_head + s->rx_n) & (s->rx_cap - 1)];
	c->bid = bid;
	c->off = 0;
	c->len = len;
	s->rx_n++;
	return 0;
}

static void cancel_op(struct stream *s, unsigned op);

/* Queues received data (one reference on buffer bid, handed over). Data
 * cannot be dropped from the middle of a stream: without memory for the
 * queue the stream ends here, with an error its owner sees. */
static bool rx_queue(struct stream *s, uint16_t bid, uint32_t len)
{
	if (rx_push(s, bid, len) == 0)
		return true;
	shard_buf_release(s->sh, bid);
	log_warn("stream", "out of memory for received data: closing a connection");
	/* Nothing from before the hole is used either, nothing after it is
	 * kept (stream_on_recv), and the recv stops. */
	stream_drop_rx(s);
	s->flags |= ST_F_ERROR;
	s->err = -ENOMEM;
	if ((s->flags & ST_F_RX_MULTI) && !(s->flags & ST_F_RX_CANCEL)) {
		cancel_op(s, OP_RECV);
		s->flags |= ST_F_RX_CANCEL;
	}
	return false;
}

/* Asks the kernel to cancel s's op (found by its user_data, by hash). */
static void cancel_op(struct stream *s, unsigned op)
{
	struct io_uring_sqe *sqe = shard_sqe(s->sh);
	io_uring_prep_cancel64(sqe, UD(s, op), 0);
	io_uring_sqe_set_data64(sqe, OP_IGNORE);
}

/* Arms the multishot recv when the stream has room for input, or cancels it
 * when the queue of unused input reached RX_HIGH (back-pressure). */
void stream_want_rx(struct stream *s)
{
	struct shard *sh = s->sh;
	struct io_uring_sqe *sqe;

	if (s->flags & (ST_F_CLOSING | ST_F_EOF | ST_F_ERROR))
		return;
	if (s->kind == STREAM_UPSTREAM && !(s->flags & ST_F_CONNECTED))
		return; /* a connect failure must surface as one, not as a recv error */
	bool oneshot = s->flags & ST_F_ONESHOT;
	if (s->rx_n >= RX_HIGH || (s->flags & ST_F_RX_PAUSED) ||
	    (oneshot && (s->flags & ST_F_RX_MULTI))) {
		/* A single recv ends by itself; a multishot one is cancelled. */
		if ((s->flags & ST_F_RX_MULTI) && !(s->flags & ST_F_RX_CANCEL)) {
			cancel_op(s, OP_RECV);
			s->flags |= ST_F_RX_CANCEL;
		}
		return;
	}
	if (s->flags & (ST_F_RX_ARMED | ST_F_STARVED))
		return;
	sqe = shard_sqe(sh);
	if (oneshot) {
		io_uring_prep_recv(sqe, s->fd, NULL, 0, 0);
	} else {
		io_uring_prep_recv_multishot(sqe, s->fd, NULL, 0, 0);
		s->flags |= ST_F_RX_MULTI;
	}
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, UD(s, OP_RECV));
	s->flags |= ST_F_RX_ARMED;
	s->inflight++;
}

/* Gives a send queue back to the shard once it is empty. */
static void txq_put(struct stream *s, struct txq **qp)
{
	struct txq *q = *qp;
	if (!q || q->n || q->sending)
		return;
	*qp = NULL;
	if (s->sh->free_txqs >= 1024) {
		free(q);
		return;
	}
	q->next_free = s->sh->free_txq;
	s->sh->free_txq = q;
	s->sh->free_txqs++;
}

/* Releases everything a queue holds and gives it back. */
static void txq_clear(struct stream *s, struct txq **qp)
{
	struct txq *q = *qp;
	if (!q)
		return;
	for (uint8_t i = 0; i < q->n; i++) {
		if (q->tx[i].bid >= 0)
			shard_buf_release(s->sh, (uint16_t)q->tx[i].bid);
		blk_free(q->tx[i].heap, q->tx[i].heap_size);
	}
	q->n = 0;
	q->sending = 0;
	txq_put(s, qp);
}

/* The queue the socket sends from: the ciphertext one under TLS. */
static struct txq **wire_queue(struct stream *s)
{
	return s->tls ? &s->ctq : &s->txq;
}

/* Frees the shard's spare send queues. */
void shard_txq_free_all(struct shard *sh)
{
	while (sh->free_txq) {
		struct txq *q = sh->free_txq;
		sh->free_txq = q->next_free;
		free(q);
	}
}

/* Finishes a stream whose last CQE has arrived. */
static void stream_finalize(struct stream *s)
{
	struct shard *sh = s->sh;

	timer_del(&s->timer); /* in case it was re-armed while closing */
	txq_clear(s, &s->txq);
	txq_clear(s, &s->ctq);
	stream_drop_rx(s);
	if (s->rx != s->rx_inline)
		free(s->rx);
	s->rx = s->rx_inline;
	if (s->fd >= 0) {
		/* On the ring, in order behind what was queued for this fd (a
		 * cancel of stream_close may still wait in the SQ): a synchronous
		 * close would free the number for the next accept before that
		 * cancel runs, and the cancel would hit the new connection. No
		 * syscall of its own either. (The lingering close's shutdown stays
		 * synchronous: queued on the ring it made integration tests fail,
		 * most likely by running after this close on a reused number.) */
		struct io_uring_sqe *sqe = shard_sqe(sh);
		io_uring_prep_close(sqe, s->fd);
		io_uring_sqe_set_data64(sqe, OP_IGNORE);
	}
	s->fd = -1;
	sh->nstreams--;
	proxy_on_closed(s);
}

/* Owes s an event (proxy_on_event) after the current batch of completions:
 * for a change no completion will report, such as a TLS failure found while
 * encrypting, when nothing is left to send. */
void stream_kick(struct stream *s)
{
	if (s->flags & (ST_F_KICKED | ST_F_CLOSING))
		return;
	s->flags |= ST_F_KICKED;
	s->kick_next = s->sh->kicked;
	s->sh->kicked = s;
}

void shard_run_kicks(struct shard *sh)
{
	while (sh->kicked) {
		struct stream *s = sh->kicked;
		sh->kicked = s->kick_next;
		s->flags &= (uint16_t)~ST_F_KICKED;
		if (!(s->flags & ST_F_CLOSING))
			proxy_on_event(s);
	}
}

/* Finalises the streams whose close found nothing in flight. */
void shard_reap(struct shard *sh)
{
	while (sh->dead) {
		struct stream *s = sh->dead;
		sh->dead = s->dead_next;
		stream_finalize(s);
	}
}

/* Counts down one finished operation; finalises a closing stream after its
 * last one. Returns true when the stream is gone. */
bool stream_op_done(struct stream *s)
{
	s->inflight--;
	if ((s->flags & ST_F_CLOSING) && !s->inflight) {
		stream_finalize(s);
		return true;
	}
	return false;
}

static bool stream_cqe_done(struct stream *s, struct io_uring_cqe *cqe)
{
	if (cqe->flags & IORING_CQE_F_MORE)
		return false;
	return stream_op_done(s);
}

void stream_on_recv(struct stream *s, struct io_uring_cqe *cqe)
{
	int res = cqe->res;
	bool more = cqe->flags & IORING_CQE_F_MORE;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		/* The kernel took this buffer from the ring. */
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		shard_buf_taken(s->sh, bid);
		if (res <= 0 || (s->flags & ST_F_CLOSING) || s->err == -ENOMEM)
			shard_buf_release(s->sh, bid);
		else if (s->tls)
			tls_input(s, bid, (uint32_t)res);
		else
			rx_queue(s, bid, (uint32_t)res);
	}
	if (!more) {
		s->flags &= (uint16_t)~(ST_F_RX_ARMED | ST_F_RX_CANCEL | ST_F_RX_MULTI);
		if (res == 0) {
			s->flags |= ST_F_EOF;
		} else if (res == -ENOBUFS) {
			shard_buf_ran_dry(s->sh);
			s->flags |= ST_F_STARVED;
			s->starved_next = s->sh->starved;
			s->sh->starved = s;
		} else if (res < 0 && res != -ECANCELED) {
			s->flags |= ST_F_ERROR;
			if (!s->err)
				s->err = res;
		}
	}
	if (stream_cqe_done(s, cqe))
		return;
	if (!(s->flags & ST_F_CLOSING))
		proxy_on_event(s);
}

bool stream_tx_room(const struct stream *s)
{
	return !s->txq || s->txq->n < TX_MAX - 1;
}

bool stream_tx_idle(const struct stream *s)
{
	return (!s->txq || s->txq->n == 0) && (!s->ctq || s->ctq->n == 0);
}

static int txq_push(struct stream *s, struct txq **qp, char *base, uint32_t len, int32_t bid,
		    char *heap, uint32_t cap)
{
	struct txq *q = *qp;
	if (!q) {
		q = s->sh->free_txq;
		if (q) {
			s->sh->free_txq = q->next_free;
			s->sh->free_txqs--;
		} else if (!(q = aligned_alloc(64, (sizeof(*q) + 63) & ~(size_t)63))) { /* struct txq */
			blk_free(heap, cap);
			return -ENOMEM;
		}
		q->n = q->sending = 0;
		*qp = q;
	}
	if (bid >= 0 && len <= 4096 && q->n > q->sending) {
		/* Small data after a heap block not yet being sent (a response
		 * head): copied into it, so that one send goes out instead of a
		 * sendmsg of two pieces. */
		struct txitem *last = &q->tx[q->n - 1];
		if (last->len + len <= last->cap) {
			memcpy(last->base + last->len, base, len);
			last->len += len;
			return 0;
		}
	}
	if (q->n >= TX_MAX) {
		blk_free(heap, cap);
		return -ENOBUFS;
	}
	if (bid >= 0)
		s->sh->bufref[bid]++;
	q->tx[q->n++] =
		(struct txitem){.base = base, .len = len, .bid = bid, .heap = heap, .cap = cap,
				.heap_size = heap ? cap : 0};
	return 0;
}

/* Queues data to send; bid >= 0 takes a reference on that buffer; heap is
 * freed once sent. Returns 0 or -ENOBUFS when the queue is full. */
int stream_tx_push(struct stream *s, char *base, uint32_t len, int32_t bid, char *heap)
{
	return txq_push(s, &s->txq, base, len, bid, heap, 0);
}

/* Queues a heap block of cap bytes holding len bytes to send; it is freed
 * once sent, and small data pushed right after it may be appended to it. */
int stream_tx_push_heap(struct stream *s, char *heap, uint32_t len, uint32_t cap)
{
	return txq_push(s, &s->txq, heap, len, -1, heap, cap);
}

/* Queues len bytes of a buffer the caller keeps (not freed), with room for
 * cap bytes from buf: small data pushed right after is appended to it. */
int stream_tx_push_buf(struct stream *s, char *buf, uint32_t len, uint32_t cap)
{
	return txq_push(s, &s->txq, buf, len, -1, NULL, cap);
}

bool stream_tx_adopt(struct stream *s, char *buf, uint32_t size)
{
	struct txq *q = s->txq;
	for (uint8_t i = 0; q && i < q->n; i++) {
		/* A partly sent item points inside buf (and has lost its cap). */
		if (q->tx[i].bid < 0 && !q->tx[i].heap && q->tx[i].base >= buf &&
		    q->tx[i].base < buf + size) {
			q->tx[i].heap = buf;
			q->tx[i].heap_size = size;
			return true;
		}
	}
	return false;
}

/* A TLS stream that can send nothing more (its records are lost, or would
 * stay unsent for good) ends with err. Its owner learns it from the error,
 * now or (nothing else may come) after the batch. */
static void tls_fail(struct stream *s, int err)
{
	s->flags |= ST_F_ERROR;
	if (!s->err)
		s->err = err;
	stream_kick(s);
}

static void tls_out_of_memory(struct stream *s)
{
	if (!(s->flags & ST_F_ERROR))
		log_warn("stream", "out of memory for TLS records: closing a connection");
	tls_fail(s, -ENOMEM);
}

/* Under TLS: encrypts what waits in the plaintext queue (once the
 * handshake is done, while the ciphertext queue has room) and moves the
 * transport's output (handshake, records, alerts) to the ciphertext queue. */
static void tls_prepare(struct stream *s)
{
	const struct transport_ops *t = s->sh->cfg->tls_ops;
	struct txq *q = s->txq;

	if (q && q->n && t->established(s->tls) && (!s->ctq || s->ctq->n < TX_MAX - 2)) {
		uint8_t i = 0;
		for (; i < q->n; i++) {
			int r = t->send(s->tls, q->tx[i].base, q->tx[i].len);
			if (r == -ENOBUFS || r == -EAGAIN)
				break; /* again once the pending output is out */
			if (r < 0) { /* the TLS connection failed (out of memory, say) */
				tls_fail(s, r);
				break;
			}
			if (q->tx[i].bid >= 0)
				shard_buf_release(s->sh, (uint16_t)q->tx[i].bid);
			blk_free(q->tx[i].heap, q->tx[i].heap_size);
		}
		memmove(q->tx, q->tx + i, sizeof(q->tx[0]) * (size_t)(q->n - i));
		q->n = (uint8_t)(q->n - i);
		txq_put(s, &s->txq);
	}
	while (!s->ctq || s->ctq->n < TX_MAX) {
		/* A block the size of what waits (TLS_CHUNK at most): nothing
		 * allocated when nothing waits, no 32 KiB for a small record. */
		size_t n = t->pending(s->tls, NULL, 0);
		if (!n)
			break;
		if (n > TLS_CHUNK)
			n = TLS_CHUNK;
		char *buf = malloc(n);
		if (!buf) {
			tls_out_of_memory(s);
			break;
		}
		n = t->pending(s->tls, buf, n);
		if (txq_push(s, &s->ctq, buf, (uint32_t)n, -1, buf, 0) < 0) {
			tls_out_of_memory(s); /* those records are lost */
			break;
		}
	}
}

/* Feeds received bytes to the transport (TLS): decrypted data goes to the
 * receive queue in buffers of the shard's own; the ciphertext buffer is
 * returned at once. */
static void tls_input(struct stream *s, uint16_t bid, uint32_t len)
{
	const struct transport_ops *t = s->sh->cfg->tls_ops;
	const char *in = shard_buf(s->sh, bid);
	size_t off = 0;

	for (int guard = 0; guard < 1024; guard++) {
		int pb = shard_plain_buf(s->sh);
		if (pb < 0) {
			log_warn("stream", "no buffer left for decrypted data: closing a connection");
			s->flags |= ST_F_ERROR;
			s->err = -ENOBUFS;
			break;
		}
		size_t used = 0;
		char *out = shard_buf(s->sh, (uint32_t)pb);
		int r = t->recv(s->tls, in + off, len - off, &used, out, s->sh->cfg->buf_size);
		off += used;
		if (r > 0) {
			if (!rx_queue(s, (uint16_t)pb, (uint32_t)r))
				break;
			continue; /* more may be waiting inside the transport */
		}
		shard_buf_release(s->sh, (uint16_t)pb);
		if (r < 0) {
			/* close_notify ends the stream; anything else is an error. */
			s->flags |= r == -ECONNRESET ? ST_F_EOF : ST_F_ERROR;
			if (!s->err && r != -ECONNRESET)
				s->err = r;
			break;
		}
		if (off >= len || !used)
			break;
	}
	shard_buf_release(s->sh, bid);
	/* Handshake messages or alerts to send, even with nothing else queued. */
	stream_flush(s);
}

/* Starts one send of everything queued, unless one is in flight. */
void stream_flush(struct stream *s)
{
	if (s->flags & (ST_F_SENDING | ST_F_CLOSING))
		return;
	/* Under TLS, also after a protocol error: the alert that explains it. */
	if (s->tls && (!(s->flags & ST_F_ERROR) || s->err == -EPROTO))
		tls_prepare(s);
	struct txq *q = *wire_queue(s);
	if (!q || !q->n || ((s->flags & ST_F_ERROR) && s->err != -EPROTO))
		return;
	if (s->kind == STREAM_UPSTREAM && !(s->flags & ST_F_CONNECTED))
		return;
	q->sending = q->n;
	struct io_uring_sqe *sqe = shard_sqe(s->sh);
	if (q->n == 1) {
		io_uring_prep_send(sqe, s->fd, q->tx[0].base, q->tx[0].len, MSG_NOSIGNAL);
	} else {
		for (uint8_t i = 0; i < q->n; i++) {
			q->iov[i].iov_base = q->tx[i].base;
			q->iov[i].iov_len = q->tx[i].len;
		}
		memset(&q->msg, 0, sizeof(q->msg));
		q->msg.msg_iov = q->iov;
		q->msg.msg_iovlen = q->n;
		io_uring_prep_sendmsg(sqe, s->fd, &q->msg, MSG_NOSIGNAL);
	}
	io_uring_sqe_set_data64(sqe, UD(s, OP_SEND));
	s->flags |= ST_F_SENDING;
	s->inflight++;
}

void stream_on_send(struct stream *s, struct io_uring_cqe *cqe)
{
	int res = cqe->res;
	struct txq **qp = wire_queue(s);
	struct txq *q = *qp;

	s->flags &= (uint16_t)~ST_F_SENDING;
	if (res < 0) {
		s->flags |= ST_F_ERROR;
		if (!s->err || s->err == -EPROTO)
			s->err = res;
	} else {
		uint32_t left = (uint32_t)res;
		uint8_t done = 0;
		while (done < q->sending && left >= q->tx[done].len) {
			left -= q->tx[done].len;
			if (q->tx[done].bid >= 0)
				shard_buf_release(s->sh, (uint16_t)q->tx[done].bid);
			blk_free(q->tx[done].heap, q->tx[done].heap_size);
			done++;
		}
		if (left && done < q->sending) {
			q->tx[done].base += left;
			q->tx[done].len -= left;
			q->tx[done].cap = 0; /* no appending behind a moved base */
		}
		memmove(q->tx, q->tx + done, sizeof(q->tx[0]) * (size_t)(q->n - done));
		q->n = (uint8_t)(q->n - done);
	}
	q->sending = 0;
	if (!(s->flags & ST_F_CLOSING))
		txq_put(s, qp);
	if (stream_cqe_done(s, cqe))
		return;
	if (!(s->flags & ST_F_CLOSING)) {
		stream_flush(s);
		proxy_on_event(s);
	}
}

/* Takes s off a list of streams linked through the field at byte offset
 * `link` (starved_next, kick_next). */
static void stream_unlink(struct stream **pp, struct stream *s, size_t link)
{
	while (*pp && *pp != s)
		pp = (struct stream **)((char *)*pp + link);
	if (*pp)
		*pp = *(struct stream **)((char *)s + link);
}

/* Starts closing: cancels whatever is in flight; the stream is finalised
 * (fd closed, buffers returned, owner told) when the last CQE arrives. */
void stream_close(struct stream *s)
{
	if (s->flags & ST_F_CLOSING)
		return;
	s->flags |= ST_F_CLOSING;
	timer_del(&s->timer);
	stream_drop_rx(s);
	if (s->flags & ST_F_STARVED)
		stream_unlink(&s->sh->starved, s, offsetof(struct stream, starved_next));
	if (s->flags & ST_F_KICKED)
		stream_unlink(&s->sh->kicked, s, offsetof(struct stream, kick_next));
	s->flags &= (uint16_t)~(ST_F_STARVED | ST_F_KICKED);
	if (!s->inflight) {
		/* Freed after the current batch of completions: callers up the
		 * stack may still look at the stream's flags. */
		s->dead_next = s->sh->dead;
		s->sh->dead = s;
		return;
	}
	/* What is in flight is cancelled by its user_data when it is only the
	 * recv and the send, which the kernel finds by hash; cancelling by
	 * file descriptor walks every armed poll of the ring (5 % of the CPU
	 * with a new connection per request). Anything else (a connect, a
	 * splice's poll) falls back to the descriptor. */
	unsigned known = !!(s->flags & ST_F_RX_ARMED) + !!(s->flags & ST_F_SENDING);
	if (known == s->inflight) {
		if (s->flags & ST_F_RX_ARMED)
			cancel_op(s, OP_RECV);
		if (s->flags & ST_F_SENDING)
			cancel_op(s, OP_SEND);
	} else {
		struct io_uring_sqe *sqe = shard_sqe(s->sh);
		io_uring_prep_cancel_fd(sqe, s->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, OP_IGNORE);
	}
	if (s->flags & ST_F_SPLICING) {
		/* A splice is keyed by its pipe, not by this socket. */
		shutdown(s->fd, SHUT_RDWR);
		cancel_op(s, OP_SPLICE);
	}
}
