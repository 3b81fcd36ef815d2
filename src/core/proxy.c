/* proxy.c - the HTTP/1.1 reverse proxy state machine of one shard.
 *
 * A client connection reads a request head (llhttp, into conn->head), routes
 * it, sends the rewritten head upstream, streams the body through as
 * received, then parses the response head, rewrites it and streams the
 * response body back. Body bytes are never copied: they are sent from the
 * provided buffers they were received in. Back-pressure comes from the
 * bounded send queues (stream.c). Requests on one connection are served in
 * order (pipelining); the two directions progress independently. */
#include "core/blkcache.h"
#include "core/log.h"
#include "core/router.h"
#include "core/shard-t.h"
#include "core/snapshot.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define UPSTREAM_HEAD_LIMIT (64 * 1024)
static char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void conn_drive(struct conn *c);
static void response_done(struct conn *c, struct upstream *u);

/* The request on u no longer counts in its shard's requests in flight
 * (which, with how busy the shard is, decide whether waits are batched:
 * shard_batch_want in shard.c). */
static void upstream_uncount(struct upstream *u)
{
	if (u->inflight) {
		u->inflight = false;
		u->s.sh->inflight--;
	}
}

/* Ends u's accounting in its endpoint's state. */
static void upstream_unaccount(struct upstream *u)
{
	if (u->st) {
		u->st->active--;
		u->st = NULL;
	}
	upstream_uncount(u);
}

/* Whether the whole body of the message p parsed the head of is already
 * received on s (by its Content-Length): then s keeps its multishot recv. */
static bool body_received(const llhttp_t *p, const struct stream *s)
{
	return (p->flags & F_CONTENT_LENGTH) && stream_rx_bytes(s) >= p->content_length;
}

static struct conn *conn_of(struct stream *s)
{
	return (struct conn *)s;
}

static struct upstream *up_of(struct stream *s)
{
	return (struct upstream *)s;
}

/* ---- upstream pool: idle connections per endpoint address ---- */

static uint32_t ep_hash(const struct snap_endpoint *ep)
{
	const unsigned char *p = (const unsigned char *)&ep->addr;
	uint32_t h = 2166136261u;
	for (socklen_t i = 0; i < ep->addrlen; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static bool ep_equal(const struct snap_endpoint *a, const struct snap_endpoint *b)
{
	return a->addrlen == b->addrlen && !memcmp(&a->addr, &b->addr, a->addrlen);
}

static void pool_remove(struct shard *sh, struct upstream *u)
{
	if (!u->idle)
		return;
	if (u->pool_prev)
		u->pool_prev->pool_next = u->pool_next;
	else
		sh->pool[u->hash % POOL_BUCKETS] = u->pool_next;
	if (u->pool_next)
		u->pool_next->pool_prev = u->pool_prev;
	u->pool_prev = u->pool_next = NULL;
	u->idle = false;
	sh->pool_idle--;
	timer_del(&u->s.timer);
}

static void pool_put(struct shard *sh, struct upstream *u)
{
	struct upstream **b = &sh->pool[u->hash % POOL_BUCKETS];
	http1_head_free(&u->head);
	u->c = NULL;
	u->idle = true;
	u->pool_prev = NULL;
	u->pool_next = *b;
	if (*b)
		(*b)->pool_prev = u;
	*b = u;
	sh->pool_idle++;
	timer_set(sh, &u->s.timer, T_UPSTREAM_IDLE);
	/* A multishot recv notices the upstream closing it, and stays armed
	 * for the next response head. */
	u->s.flags &= (uint16_t)~ST_F_ONESHOT;
	stream_want_rx(&u->s);
}

/* A response body follows its head: one recv at a time from now on, so
 * that a slow client bounds what is read ahead (a multishot recv reads
 * as long as there are bytes and buffers), unless the whole body (by its
 * Content-Length) is already received (never for a tunnel, whose bytes
 * have no end). Heads and small responses come by the multishot recv,
 * armed once per connection instead of once per response, and not
 * cancelled. */
static void upstream_body_mode(struct upstream *u, bool tunnel)
{
	if (!tunnel && body_received(&u->parser, &u->s))
		return;
	u->s.flags |= ST_F_ONESHOT;
	stream_want_rx(&u->s); /* cancels the multishot recv */
}

static struct upstream *pool_take(struct shard *sh, const struct snap_endpoint *ep, uint32_t hash)
{
	for (struct upstream *u = sh->pool[hash % POOL_BUCKETS]; u; u = u->pool_next) {
		if (u->hash == hash && ep_equal(&u->ep, ep) &&
		    !(u->s.flags & (ST_F_EOF | ST_F_ERROR)) && stream_rx_empty(&u->s)) {
			pool_remove(sh, u);
			return u;
		}
	}
	return NULL;
}

/* Closes idle connections to endpoints that the current snapshot no longer
 * has (all of them when stopping). */
void proxy_pool_flush(struct shard *sh)
{
	for (int b = 0; b < POOL_BUCKETS; b++) {
		struct upstream *u = sh->pool[b];
		while (u) {
			struct upstream *next = u->pool_next;
			/* The endpoint states of the current snapshot carry its
			 * generation (set when it was adopted). */
			struct ep_state *st = balancer_find(&sh->bal, &u->ep);
			if (sh->stopping || !sh->cur || !st ||
			    st->generation != sh->cur->snap->generation) {
				pool_remove(sh, u);
				stream_close(&u->s);
			}
			u = next;
		}
	}
}

/* ---- helpers ---- */

static void client_ip(struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (c->peer_ip[0])
		return;
	strcpy(c->peer_ip, "unknown");
	if (getpeername(c->s.fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, c->peer_ip,
			  sizeof(c->peer_ip));
	} else if (ss.ss_family == AF_INET6) {
		struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], c->peer_ip, sizeof(c->peer_ip));
		else
			inet_ntop(AF_INET6, a, c->peer_ip, sizeof(c->peer_ip));
	}
}

static uint64_t rng_next(struct shard *sh)
{
	uint64_t s1 = sh->rng[0];
	const uint64_t s0 = sh->rng[1];
	sh->rng[0] = s0;
	s1 ^= s1 << 23;
	sh->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
	return sh->rng[1] + s0;
}

static void request_id(struct shard *sh, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t a = rng_next(sh), b = rng_next(sh);
	for (int i = 0; i < 16; i++) {
		out[i] = hex[(a >> (i * 4)) & 15];
		out[16 + i] = hex[(b >> (i * 4)) & 15];
	}
	out[32] = 0;
}

/* Runs the parser on no input: moves it past states that need none (end of
 * a message without body). Returns the event that paused it, or -1. */
static int parser_kick(llhttp_t *p, struct http1_head *h)
{
	h->event = HTTP1_EV_NONE;
	llhttp_errno_t err = llhttp_execute(p, "", 0);
	if (err == HPE_PAUSED) {
		llhttp_resume(p);
		return h->event;
	}
	return err == HPE_OK ? HTTP1_EV_NONE : -1;
}

/* Parses a message head from s's input into h. Returns 1 when the head is
 * complete (the parser is resumed, h->len ends at the head), 0 when more
 * input is needed, -E2BIG when the head is too large, -ENOMEM when there
 * was no memory to hold it, -EPROTO when the input is malformed. */
static int read_head(struct stream *s, llhttp_t *p, struct http1_head *h)
{
	while (!stream_rx_empty(s)) {
		struct rxchunk *ch = stream_rx_front(s);
		const char *data = stream_chunk_data(s, ch);
		uint32_t room = h->limit - h->len;
		uint32_t n = ch->len < room ? ch->len : room;
		uint32_t old = h->len;

		if (!n)
			return -E2BIG;
		int r = http1_head_append(h, data, n);
		if (r < 0)
			return r;
		h->event = HTTP1_EV_NONE;
		llhttp_errno_t err = llhttp_execute(p, h->buf + old, n);
		if (err == HPE_OK) {
			stream_rx_consume(s, n);
			continue;
		}
		if (err == HPE_PAUSED && h->event == HTTP1_EV_HEADERS) {
			uint32_t pos = (uint32_t)(llhttp_get_error_pos(p) - h->buf);
			h->len = pos;
			stream_rx_consume(s, pos - old);
			llhttp_resume(p);
			return 1;
		}
		log_debug("proxy", "malformed message: %s", llhttp_get_error_reason(p));
		return h->overflow == HTTP1_OVERFLOW_NOMEM ? -ENOMEM : h->overflow ? -E2BIG : -EPROTO;
	}
	return h->len >= h->limit ? -E2BIG : 0;
}

/* ---- closing ---- */

static void upstream_detach_close(struct conn *c)
{
	struct upstream *u = c->up;
	if (!u)
		return;
	c->up = NULL;
	u->c = NULL;
	upstream_unaccount(u);
	stream_close(&u->s);
}

static void conn_abort(struct conn *c)
{
	upstream_detach_close(c);
	stream_close(&c->s);
}

/* No memory for what must go out next (what: a response head, a send
 * queue...): the response cannot be whole, so the connection ends. */
static void conn_abort_nomem(struct conn *c, const char *what)
{
	log_warn("proxy", "out of memory for %s: closing a client connection", what);
	conn_abort(c);
}

/* Queues len bytes for the client (heap freed once sent, or NULL); without
 * memory for its send queue the connection ends. Returns false then. */
static bool client_push(struct conn *c, char *base, uint32_t len, char *heap)
{
	if (stream_tx_push(&c->s, base, len, -1, heap) == 0)
		return true;
	conn_abort_nomem(c, "a send queue");
	return false;
}

/* Closes the client connection once everything queued is sent: the write
 * side first, then input is drained for a while so that unread input does
 * not turn into a reset that destroys the response (lingering close), unless
 * the client itself asked for the close after a request read whole. */
static void conn_close_graceful(struct conn *c)
{
	if (!stream_tx_idle(&c->s))
		return;
	if (c->s.flags & (ST_F_EOF | ST_F_ERROR)) {
		stream_close(&c->s);
		return;
	}
	if (c->flags & C_F_LINGER)
		return;
	if (c->s.tls && !(c->flags & C_F_NOTIFIED)) {
		/* TLS: close_notify first, so that the client knows the end is
		 * the end (and keeps its session for a resumption). */
		c->flags |= C_F_NOTIFIED;
		c->s.sh->cfg->tls_ops->shutdown(c->s.tls);
		stream_flush(&c->s);
		if (!stream_tx_idle(&c->s))
			return; /* back here once the alert is sent */
	}
	if (c->flags & C_F_CLIENT_CLOSE) {
		/* The client asked for the close and all it sent was read: it
		 * sends nothing more but its FIN, so there is nothing to drain
		 * and the close can be at once (nginx decides the same way). */
		stream_close(&c->s);
		return;
	}
	c->flags |= C_F_LINGER;
	shutdown(c->s.fd, SHUT_WR);
	stream_drop_rx(&c->s);
	timer_set(c->s.sh, &c->s.timer, T_LINGER);
	stream_want_rx(&c->s);
}

/* ---- responses made by ringress ---- */

/* The rest of the request (its body) will not be read: the request counts
 * as done, and the close after the response must drain what still comes. */
static void request_abandon(struct conn *c)
{
	c->rq = RQ_DONE;
	c->flags &= ~C_F_CLIENT_CLOSE;
}

static void respond_local(struct conn *c, int status, bool close)
{
	struct shard *sh = c->s.sh;
	char *buf = malloc(1024);

	STAT_INC(sh, responses_local);
	if (close || sh->stopping)
		c->flags |= C_F_CLOSE_AFTER;
	if (!buf) {
		conn_abort_nomem(c, "a response");
		return;
	}
	int n = http1_make_response(status, c->flags & C_F_HEAD, c->flags & C_F_CLOSE_AFTER,
				    sh->date, buf, 1024);
	if (!client_push(c, buf, (uint32_t)n, buf))
		return;
	c->flags |= C_F_SENT;
	c->rs = RS_DONE;
	if (c->rq != RQ_DONE && (c->flags & C_F_CLOSE_AFTER))
		request_abandon(c);
}

/* 308 to the same host and target over HTTPS (a host with TLS). */
static void respond_redirect(struct conn *c, const char *host, size_t hl)
{
	struct shard *sh = c->s.sh;
	const char *url = c->head.buf + c->head.url.off;
	size_t ul = c->head.url.len;
	/* The Host without its port; the target in origin form. */
	size_t n = router_host_name_len(host, hl);
	size_t skip = http1_target_origin(url, ul, NULL, NULL);
	url += skip;
	ul -= skip;
	size_t cap = n + ul + 64;
	char *loc = malloc(cap), *buf = malloc(cap + 512);
	if (!loc || !buf) {
		free(loc);
		free(buf);
		conn_abort_nomem(c, "a redirect");
		return;
	}
	int ll = snprintf(loc, cap, "https://%.*s", (int)n, host);
	if (sh->cfg->https_port != 443)
		ll += snprintf(loc + ll, cap - (size_t)ll, ":%u", sh->cfg->https_port);
	ll += snprintf(loc + ll, cap - (size_t)ll, "%s%.*s", ul && url[0] == '/' ? "" : "/", (int)ul,
		       url);
	STAT_INC(sh, responses_local);
	if (sh->stopping)
		c->flags |= C_F_CLOSE_AFTER;
	int r = http1_make_redirect(308, loc, (size_t)ll, c->flags & C_F_HEAD,
				    c->flags & C_F_CLOSE_AFTER, sh->date, buf, cap + 512);
	free(loc);
	if (r < 0) {
		free(buf);
		conn_abort(c);
		return;
	}
	if (!client_push(c, buf, (uint32_t)r, buf))
		return;
	c->flags |= C_F_SENT;
	c->rs = RS_DONE;
}

/* ---- upstream connections ---- */

static struct upstream *upstream_connect(struct shard *sh, const struct snap_endpoint *ep,
					 uint32_t hash, uint64_t timeout_ms)
{
	int one = 1;
	int fd = socket(ep->addr.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warn("proxy", "cannot open a socket to upstream %s: %s (raise the open files "
				  "limit, ulimit -n, if it is the limit)", ep->text, strerror(errno));
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct upstream *u = calloc(1, sizeof(*u));
	if (!u) {
		log_warn("proxy", "out of memory for a connection to upstream %s", ep->text);
		close(fd);
		return NULL;
	}
	stream_init(&u->s, sh, fd, STREAM_UPSTREAM);
	u->ep = *ep;
	u->hash = hash;
	u->connect_ts.tv_sec = (long long)(timeout_ms / 1000);
	u->connect_ts.tv_nsec = (long long)(timeout_ms % 1000) * 1000000;

	struct io_uring_sqe *sqe = shard_sqe(sh);
	io_uring_prep_connect(sqe, fd, &u->ep.addr.sa, u->ep.addrlen);
	io_uring_sqe_set_data64(sqe, UD(u, OP_CONNECT));
	sqe->flags |= IOSQE_IO_LINK;
	sqe = shard_sqe(sh);
	io_uring_prep_link_timeout(sqe, &u->connect_ts, 0);
	io_uring_sqe_set_data64(sqe, OP_IGNORE);
	u->s.inflight++;
	STAT_INC(sh, upstream_connects);
	return u;
}

/* Timeouts of the request's backend: its annotations, else the flags. */
static uint64_t read_timeout(const struct conn *c)
{
	uint32_t ms = c->backend ? c->backend->opts.read_timeout_ms : 0;
	return ms ? ms : c->s.sh->cfg->proxy_read_timeout_ms;
}

static uint64_t send_timeout(const struct conn *c)
{
	uint32_t ms = c->backend ? c->backend->opts.send_timeout_ms : 0;
	return ms ? ms : c->s.sh->cfg->proxy_send_timeout_ms;
}

static uint64_t connect_timeout(const struct conn *c)
{
	uint32_t ms = c->backend ? c->backend->opts.connect_timeout_ms : 0;
	return ms ? ms : c->s.sh->cfg->proxy_connect_timeout_ms;
}

/* Arms the upstream's timer: send timeout while the request is still being
 * sent, read timeout while waiting for or reading the response. */
static void upstream_timer(struct conn *c, struct upstream *u)
{
	if (c->flags & C_F_TUNNEL) {
		timer_set_ms(c->s.sh, &u->s.timer, T_PROXY_READ, c->tunnel_idle_ms);
		return;
	}
	bool sending = c->rq == RQ_BODY || !stream_tx_idle(&u->s);
	timer_set_ms(c->s.sh, &u->s.timer, sending ? T_PROXY_SEND : T_PROXY_READ,
		     sending ? send_timeout(c) : read_timeout(c));
}

/* The body bytes a request may have for a replay: REPLAY_MAX buffers'
 * worth, kept as up to REPLAY_MAX buffer slices or one copied block
 * (replay_append). A longer Content-Length takes a fresh connection. */
static uint32_t replay_cap(const struct shard *sh)
{
	return REPLAY_MAX * sh->cfg->buf_size;
}

static void replay_release(struct conn *c)
{
	for (uint8_t i = 0; i < c->nreplay; i++) {
		if (c->replay[i].heap)
			free(c->replay[i].base);
		else
			shard_buf_release(c->s.sh, (uint16_t)c->replay[i].bid);
	}
	c->nreplay = 0;
}

/* Queues the body kept for a replay on a new upstream connection; the
 * conn's own copy goes as a copy the send queue owns (the conn may need it
 * again, and may drop it before a send on a failed connection is over). */
static bool replay_queue(struct conn *c, struct upstream *u)
{
	for (uint8_t i = 0; i < c->nreplay; i++) {
		const struct replay_item *it = &c->replay[i];
		if (!it->heap) {
			if (stream_tx_push(&u->s, it->base, it->len, it->bid, NULL) != 0)
				return false;
			continue;
		}
		uint32_t got;
		char *cp = blk_alloc(it->len, &got);
		if (!cp)
			return false;
		memcpy(cp, it->base, it->len);
		if (stream_tx_push_heap(&u->s, cp, it->len, got) != 0) /* freed there */
			return false;
	}
	return true;
}

/* Gives c an upstream connection to an endpoint of its backend chosen by
 * the balancer (or to endpoint `same` again, on a fresh connection, for a
 * stale keep-alive retry) and queues the request head and any body kept
 * for a replay; sends them at once when flush is set (retries), else
 * leaves that to the caller's conn_drive. */
static int upstream_attach(struct conn *c, int same, bool flush)
{
	struct shard *sh = c->s.sh;
	const struct snap_backend *b = c->backend;
	struct bal_view *v = &c->sref->view;
	int e = same;

	if (e < 0) {
		e = balancer_pick(&sh->bal, v, b, c->hash_key, c->tried, c->ntried, sh->now_ms);
		if (e < 0)
			return -ENOENT;
		if (c->ntried < sizeof(c->tried) / sizeof(c->tried[0]))
			c->tried[c->ntried++] = (uint32_t)e;
	}
	const struct snap_endpoint *ep = &b->endpoints[e];
	uint32_t hash = ep_hash(ep);
	/* A request body that cannot be kept for a replay takes a fresh
	 * connection, which cannot turn out to be one the upstream closed while
	 * it idled: a chunked body (re-encoded as it streams), or one known at
	 * its head not to fit the replay list (C_F_BIG_BODY). */
	bool fresh = same >= 0 || (c->parser.flags & F_CHUNKED) || (c->flags & C_F_BIG_BODY);
	struct upstream *u = fresh ? NULL : pool_take(sh, ep, hash);

	if (u) {
		u->reused = true;
	} else {
		u = upstream_connect(sh, ep, hash, connect_timeout(c));
		if (!u)
			return -ENOMEM;
	}
	u->c = c;
	c->up = u;
	u->st = v->eps[v->off[b->id] + (uint32_t)e];
	u->st->active++;
	u->inflight = true;
	sh->inflight++;
	u->t_start = sh->now_ms;
	llhttp_init(&u->parser, HTTP_RESPONSE, &sh->resp_settings);
	u->parser.data = &u->head;
	http1_head_reset(&u->head);
	u->head.limit = UPSTREAM_HEAD_LIMIT;
	u->head.on_body = NULL;
	u->reusable = false;
	u->answered = false;
	/* The request head, with room behind it for a small body (one send). */
	bool queued = stream_tx_push_buf(&u->s, c->fwd_head, c->fwd_len, c->fwd_cap) == 0 &&
		      replay_queue(c, u);
	if (!queued) { /* out of memory for a send queue */
		upstream_detach_close(c);
		return -ENOMEM;
	}
	upstream_timer(c, u);
	if ((u->s.flags & ST_F_CONNECTED) && flush) {
		stream_want_rx(&u->s);
		stream_flush(&u->s);
	}
	c->rs = RS_HEAD;
	return 0;
}

static bool method_idempotent(int m)
{
	return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS || m == HTTP_TRACE ||
	       m == HTTP_PUT || m == HTTP_DELETE;
}

enum fail_kind {
	FAIL_CONNECT,  /* the request never reached the upstream */
	FAIL_ERROR,    /* reset or closed before a complete response head */
	FAIL_TIMEOUT,  /* no response within the read timeout */
	FAIL_INVALID,  /* not HTTP */
	FAIL_LOCAL,    /* ringress itself ran out of memory: nobody's fault upstream */
};

/* May the request go to another endpoint after this failure? */
static bool may_retry(const struct conn *c, enum fail_kind kind)
{
	const struct core_config *cfg = c->s.sh->cfg;

	if ((c->flags & C_F_SENT) || c->rs != RS_HEAD || !c->sref)
		return false;
	if (c->ntried >= cfg->next_upstream_tries || c->ntried >= c->backend->nendpoints)
		return false;
	if (!(c->flags & C_F_REPLAYABLE))
		return false;
	switch (kind) {
	case FAIL_CONNECT:
		return cfg->next_upstream & (NEXT_UPSTREAM_ERROR | NEXT_UPSTREAM_TIMEOUT);
	case FAIL_ERROR:
		return (cfg->next_upstream & NEXT_UPSTREAM_ERROR) &&
		       method_idempotent(c->parser.method);
	case FAIL_TIMEOUT:
		return (cfg->next_upstream & NEXT_UPSTREAM_TIMEOUT) &&
		       method_idempotent(c->parser.method);
	default:
		return false;
	}
}

/* The upstream failed before the response was complete. A reused
 * keep-alive connection that turns out closed is retried on a fresh
 * connection to the same endpoint; a connect failure, and an error or
 * timeout of an idempotent request, go to another endpoint (up to
 * --proxy-next-upstream-tries); otherwise the client gets status
 * (502/504) if nothing was sent yet, or loses the connection. */
static void upstream_fail(struct conn *c, int status, enum fail_kind kind, const char *why)
{
	struct shard *sh = c->s.sh;
	struct upstream *u = c->up;
	/* Stale: closed before any byte of an answer, so the request never got
	 * there. A 1xx says it did (the head is reset after one): a retry could
	 * run a POST twice. */
	bool stale = u && u->reused && !u->head.len && !u->answered && kind == FAIL_ERROR;

	STAT_INC(sh, upstream_errors);
	if (stale && (c->flags & C_F_REPLAYABLE) && !(c->flags & C_F_RETRIED) &&
	    c->rs == RS_HEAD && c->ntried) {
		log_debug("proxy", "upstream %s of %s closed a kept-alive connection; retrying",
			  u->ep.text, c->backend->name);
		int same = (int)c->tried[c->ntried - 1];
		upstream_detach_close(c);
		c->flags |= C_F_RETRIED;
		if (upstream_attach(c, same, true) == 0)
			return;
	}
	if (u && u->st && !stale && kind != FAIL_LOCAL &&
	    balancer_done(&sh->bal, u->st, false, 0, sh->now_ms))
		log_warn("proxy", "endpoint %s of %s ejected for %llums after %u failures in a row",
			 u->ep.text, c->backend ? c->backend->name : "-",
			 (unsigned long long)u->st->backoff_ms, u->st->fails);
	log_warn("proxy", "upstream %s of %s: %s%s", u ? u->ep.text : "-",
		 c->backend ? c->backend->name : "-", why,
		 may_retry(c, kind) ? "; trying another endpoint" : "");
	upstream_detach_close(c);
	if (may_retry(c, kind) && upstream_attach(c, -1, true) == 0)
		return;
	replay_release(c);
	if (!(c->flags & C_F_SENT))
		respond_local(c, status, c->rq != RQ_DONE);
	else
		stream_close(&c->s);
}

/* A response head that could not be read or written out (err from
 * read_head or http1_rewrite_response): 503 when ringress had no memory for
 * it, 502 when the upstream sent too much or not HTTP. */
static void response_head_fail(struct conn *c, int err)
{
	if (err == -ENOMEM)
		upstream_fail(c, 503, FAIL_LOCAL, "out of memory for the response head");
	else
		upstream_fail(c, 502, FAIL_INVALID,
			      err == -EPROTO ? "invalid response head" : "response head too large");
}

void proxy_on_connect(struct upstream *u, int res)
{
	if (stream_op_done(&u->s))
		return;
	if (u->s.flags & ST_F_CLOSING)
		return;
	struct conn *c = u->c;
	if (res < 0) {
		char why[96];
		snprintf(why, sizeof(why), "connect: %s",
			 res == -ECANCELED ? "timed out" : strerror(-res));
		if (c) {
			upstream_fail(c, res == -ECANCELED ? 504 : 502, FAIL_CONNECT, why);
			if (!(c->s.flags & ST_F_CLOSING))
				conn_drive(c); /* sends the answer, or the retry */
		} else {
			stream_close(&u->s);
		}
		return;
	}
	u->s.flags |= ST_F_CONNECTED;
	/* The client's side first: what body came with the head is queued
	 * behind it, so both leave in one send. (A stream closed meanwhile is
	 * freed only after this batch of completions.) */
	if (c)
		conn_drive(c);
	stream_want_rx(&u->s);
	stream_flush(&u->s);
}

/* ---- request side ---- */

/* The key upstream-hash-by names, hashed: a header, a cookie, the client
 * address or the request URI. A request without it hashes "" (one spot). */
static uint32_t request_hash_key(struct conn *c)
{
	const struct snap_backend_opts *o = &c->backend->opts;
	const char *v = "";
	size_t n = 0;

	switch (o->hash_src) {
	case SNAP_HASH_HEADER:
		http1_find_header(&c->head, o->hash_key, &v, &n);
		break;
	case SNAP_HASH_COOKIE:
		http1_find_cookie(&c->head, o->hash_key, &v, &n);
		break;
	case SNAP_HASH_URI:
		v = c->head.buf + c->head.url.off;
		n = c->head.url.len;
		break;
	default:
		v = c->peer_ip;
		n = strlen(v);
		break;
	}
	return snapshot_hash(v, n, 0);
}

/* Routes the request whose head was just read and starts forwarding it.
 * Returns 0, or -1 when a local response was queued instead. */
static int start_request(struct conn *c)
{
	struct shard *sh = c->s.sh;
	const struct core_config *cfg = sh->cfg;
	llhttp_t *p = &c->parser;
	struct http1_info info_buf, *info = &info_buf; /* needed only here */
	int status = 0;

	c->nreq++;
	STAT_INC(sh, requests);
	http1_head_scan(&c->head, p, info);
	if (p->method == HTTP_HEAD)
		c->flags |= C_F_HEAD;
	if (p->http_major == 1 && p->http_minor == 0)
		c->flags |= C_F_HTTP10;
	if (!llhttp_should_keep_alive(p))
		c->flags |= C_F_CLOSE_AFTER | C_F_CLIENT_CLOSE;
	if (c->nreq >= cfg->keepalive_requests || sh->stopping)
		c->flags |= C_F_CLOSE_AFTER;
	bool has_body = (p->flags & F_CHUNKED) || p->content_length > 0;

	int plen = 0;
	if (p->http_major == 1 && p->http_minor >= 1 && info->host < 0)
		status = 400;
	else if (p->http_major != 1)
		status = p->http_major ? 505 : 400; /* HTTP/0.9 is not spoken */
	else if (info->bad_header || info->bad_length)
		status = 400;
	else if (p->method == HTTP_CONNECT)
		status = 405;
	else if (info->bad_expect)
		status = 417;
	else if (cfg->proxy_body_size && (p->flags & F_CONTENT_LENGTH) &&
		 p->content_length > cfg->proxy_body_size)
		status = 413;
	else if (!sh->cur)
		status = 503;
	if (!status) {
		plen = router_normalize_path(c->head.buf + c->head.url.off, c->head.url.len,
					     sh->scratch, sh->scratch_cap);
		if (plen == -ENOSPC)
			status = 414;
		else if (plen < 0)
			status = 400;
	}
	if (!status) {
		/* Absolute form: the target's authority is the host (RFC 9112,
		 * 3.2.2), whatever the Host header says. */
		const char *host;
		size_t hl;
		if (!http1_target_origin(c->head.buf + c->head.url.off, c->head.url.len, &host,
					 &hl) &&
		    http1_find_header(&c->head, "host", &host, &hl) < 0) {
			host = "";
			hl = 0;
		}
		const struct snap_host *hh;
		if (!c->s.tls && cfg->https_port && (hh = router_host(sh->cur->snap, host, hl)) &&
		    (hh->flags & SNAP_HOST_SSL_REDIRECT)) {
			respond_redirect(c, host, hl);
			if (!(c->flags & C_F_CLOSE_AFTER) && has_body)
				c->flags |= C_F_CLOSE_AFTER;
			if (has_body && (c->flags & C_F_CLOSE_AFTER))
				request_abandon(c);
			else if (c->flags & C_F_CLOSE_AFTER)
				c->rq = RQ_DONE;
			else
				c->rq = parser_kick(p, &c->head) == HTTP1_EV_MESSAGE ? RQ_DONE
										     : RQ_BODY;
			return -1;
		}
		c->backend = router_match(sh->cur->snap, host, hl, sh->scratch, (size_t)plen);
		if (!c->backend) {
			status = 404;
		} else if (!c->backend->nendpoints) {
			log_warn("proxy", "no ready endpoint for %s: 503", c->backend->name);
			status = 503;
		}
	}
	if (status) {
		/* The body cannot be skipped reliably: close after answering. */
		respond_local(c, status, has_body || status == 400);
		if (!(c->flags & C_F_CLOSE_AFTER))
			c->rq = parser_kick(p, &c->head) == HTTP1_EV_MESSAGE ? RQ_DONE : RQ_BODY;
		return -1;
	}

	c->sref = sh->cur;
	c->sref->users++;
	client_ip(c);
	char rid[33];
	request_id(sh, rid);
	if (info->upgrade && p->method == HTTP_GET && !(c->flags & C_F_HTTP10))
		c->flags |= C_F_UPGRADE;
	struct http1_fwd fwd = {.client_ip = c->peer_ip,
				.proto = c->s.tls ? "https" : "http",
				.port = c->s.tls ? cfg->https_port : cfg->http_port,
				.request_id = rid,
				.strip_expect = false,
				.upgrade = c->flags & C_F_UPGRADE};
	if (c->backend->opts.lb == SNAP_LB_HASH)
		c->hash_key = request_hash_key(c);
	if (info->expect_continue && has_body) {
		fwd.strip_expect = true;
		if (!(c->flags & C_F_HTTP10)) {
			if (!client_push(c, continue_100, sizeof(continue_100) - 1, NULL))
				return -1;
			c->flags |= C_F_CONTINUE;
		}
	}
	size_t cap = c->head.len + 1024;
	size_t room = (p->flags & F_CONTENT_LENGTH) && p->content_length <= 4096
			      ? (size_t)p->content_length
			      : 0;
	uint32_t got;
	c->fwd_head = blk_alloc(cap + room, &got);
	int n = c->fwd_head ? http1_rewrite_request(&c->head, info, p, &fwd, c->fwd_head, cap)
			    : -ENOMEM;
	if (n < 0) {
		if (n == -ENOMEM)
			log_warn("proxy", "out of memory for a forwarded request head: 503");
		respond_local(c, n == -ENOMEM ? 503 : 500, true);
		return -1;
	}
	c->fwd_len = (uint32_t)n;
	c->fwd_cap = got;
	c->flags |= C_F_REPLAYABLE; /* until the body outgrows the replay list */
	/* Once more than the replay keeps went out, a stale connection could
	 * not be retried. */
	if ((p->flags & F_CONTENT_LENGTH) && p->content_length > replay_cap(c->s.sh))
		c->flags |= C_F_BIG_BODY;
	c->rq = RQ_BODY;
	/* Request bodies: one recv at a time (bounded read-ahead), unless the
	 * whole body came with the head (no cancel of the multishot recv). */
	if (has_body && !body_received(p, &c->s))
		c->s.flags |= ST_F_ONESHOT;
	/* Not sent yet: conn_drive pumps what body came with the head into the
	 * same send (appended behind the head), then flushes. */
	int r = upstream_attach(c, -1, false);
	if (r < 0) {
		/* No endpoint left to try: 502; no socket or memory here: 503. */
		respond_local(c, r == -ENOMEM ? 503 : 502, true);
		return -1;
	}
	return 0;
}

/* What the parse of one received chunk of a body produces: the request's
 * body bytes counted (count), and unless the body is forwarded as received,
 * the bytes to forward instead (out: chunked bodies re-encoded, or
 * de-chunked for an HTTP/1.0 client). */
struct body_sink {
	struct conn *count;
	struct http1_body_out out;
};

static int body_event(void *user, enum http1_body_ev ev, const char *at, size_t len)
{
	struct body_sink *b = user;
	if (ev == HTTP1_BODY_DATA && b->count)
		b->count->body_bytes += len;
	return b->out.buf ? http1_body_out_put(&b->out, ev, at, len) : 0;
}

/* Parses the received chunk data (len bytes, provided buffer bid) of the
 * body of the message p / h is parsing and queues it on stream `to`: as
 * received (a buffer reference, zero-copy) for a Content-Length body,
 * re-encoded in canonical chunked framing for a chunked one, de-chunked
 * when plain is set. Stores the parse's result (*err) and the bytes it used
 * (*used); returns -1 when the parse failed (*err its error) or memory ran
 * out (*err HPE_OK), with nothing queued. */
static int body_forward(struct stream *to, llhttp_t *p, struct http1_head *h, struct conn *count,
			char *data, uint32_t len, int bid, bool plain, llhttp_errno_t *err,
			uint32_t *used)
{
	struct body_sink b = {.count = count, .out = {.plain = plain}};
	if (plain || (p->flags & F_CHUNKED)) {
		b.out.cap = (size_t)len + HTTP1_RECHUNK_SLACK;
		b.out.buf = malloc(b.out.cap);
		if (!b.out.buf) {
			*err = HPE_OK; /* not the parse */
			return -1;
		}
	}
	h->event = HTTP1_EV_NONE;
	h->on_body = body_event;
	h->user = &b;
	*err = http1_execute_body(p, data, len);
	h->on_body = NULL;
	if (*err == HPE_OK) {
		*used = len;
	} else if (*err == HPE_PAUSED && h->event == HTTP1_EV_MESSAGE) {
		*used = (uint32_t)(llhttp_get_error_pos(p) - data);
	} else {
		free(b.out.buf);
		return -1;
	}
	int r = 0;
	if (b.out.buf) {
		if (b.out.len)
			r = stream_tx_push(to, b.out.buf, (uint32_t)b.out.len, -1, b.out.buf);
		else
			free(b.out.buf);
	} else if (*used) {
		r = stream_tx_push(to, data, *used, bid, NULL);
	}
	if (r < 0) {
		*err = HPE_OK; /* not the parse: a piece of the body is lost */
		return -1;
	}
	return 0;
}

/* A body in more pieces than the replay list holds (a client that writes
 * it in small pieces): the pieces kept so far move into one block of the
 * list's capacity, their buffers given back, and later pieces are appended
 * to it. Fails when out of memory or when the body outgrows the block. */
static int replay_append(struct conn *c, const char *data, uint32_t len)
{
	struct replay_item *r = c->replay;
	uint32_t cap = replay_cap(c->s.sh);

	if (!r[0].heap) {
		uint64_t total = len;
		for (uint8_t i = 0; i < c->nreplay; i++)
			total += r[i].len;
		char *blk = total <= cap ? malloc(cap) : NULL;
		if (!blk)
			return -1;
		uint32_t at = 0;
		for (uint8_t i = 0; i < c->nreplay; i++) {
			memcpy(blk + at, r[i].base, r[i].len);
			at += r[i].len;
		}
		replay_release(c);
		r[0] = (struct replay_item){.base = blk, .len = at, .heap = true};
		c->nreplay = 1;
	}
	if (len > cap - r[0].len)
		return -1;
	memcpy(r[0].base + r[0].len, data, len);
	r[0].len += len;
	return 0;
}

/* Keeps a body slice for a replay while the whole body fits the list (in
 * REPLAY_MAX buffers' worth of bytes, however many pieces). */
static void replay_keep(struct conn *c, char *data, uint32_t len, uint16_t bid)
{
	if (!(c->flags & C_F_REPLAYABLE))
		return;
	if (!c->replay && !(c->replay = malloc(REPLAY_MAX * sizeof(*c->replay))))
		goto drop;
	bool copied = c->nreplay && c->replay[0].heap; /* appended to from then on */
	if (!copied && c->nreplay < REPLAY_MAX) {
		c->s.sh->bufref[bid]++;
		c->replay[c->nreplay++] = (struct replay_item){.base = data, .len = len, .bid = bid};
		return;
	}
	if (replay_append(c, data, len) == 0)
		return;
drop:
	replay_release(c); /* no replay of this request */
	c->flags &= ~C_F_REPLAYABLE;
}

/* Streams the request body from the client to the upstream (as received
 * with a Content-Length, re-encoded when chunked: body_forward); stops at
 * the end of the message. */
static void pump_request(struct conn *c)
{
	struct shard *sh = c->s.sh;
	struct upstream *u = c->up;
	llhttp_errno_t err = HPE_USER; /* HPE_OK at bad: out of memory */

	if (!(c->flags & C_F_KICKED)) {
		c->flags |= C_F_KICKED;
		int ev = parser_kick(&c->parser, &c->head);
		if (ev == HTTP1_EV_MESSAGE) {
			c->rq = RQ_DONE;
			return;
		}
		if (ev < 0)
			goto bad;
	}
	while (c->rq == RQ_BODY && !stream_rx_empty(&c->s)) {
		if (!u) {
			stream_drop_rx(&c->s);
			return;
		}
		/* The body waits for the connection: a connect failure can then
		 * go to another endpoint with nothing lost. */
		if (!(u->s.flags & ST_F_CONNECTED) || !stream_tx_room(&u->s))
			return;
		struct rxchunk *ch = stream_rx_front(&c->s);
		char *data = stream_chunk_data(&c->s, ch);
		bool chunked = c->parser.flags & F_CHUNKED;
		uint32_t used;
		if (body_forward(&u->s, &c->parser, &c->head, c, data, ch->len, ch->bid, false, &err,
				 &used) < 0)
			goto bad;
		if (sh->cfg->proxy_body_size && c->body_bytes > sh->cfg->proxy_body_size) {
			/* Only a chunked body gets here: a Content-Length is checked
			 * before anything is forwarded. */
			upstream_detach_close(c);
			if (!(c->flags & C_F_SENT))
				respond_local(c, 413, true);
			else
				stream_close(&c->s);
			return;
		}
		if (used && !chunked) {
			replay_keep(c, data, used, ch->bid);
		} else if (used) {
			/* A re-encoded body is not kept for a replay. */
			replay_release(c);
			c->flags &= ~C_F_REPLAYABLE;
		}
		stream_rx_consume(&c->s, used);
		if (err == HPE_PAUSED) {
			llhttp_resume(&c->parser);
			c->rq = RQ_DONE;
		}
	}
	if (c->rq == RQ_BODY && (c->s.flags & (ST_F_EOF | ST_F_ERROR)) && stream_rx_empty(&c->s)) {
		log_debug("proxy", "client closed during the request body");
		conn_abort(c);
	}
	return;
bad:
	if (err == HPE_OK)
		log_warn("proxy", "request body: out of memory");
	else
		log_debug("proxy", "malformed request body: %s", llhttp_get_error_reason(&c->parser));
	upstream_detach_close(c);
	if (!(c->flags & C_F_SENT))
		respond_local(c, err == HPE_OK ? 503 : 400, true);
	else
		stream_close(&c->s);
}

/* ---- response side ---- */

/* 101 Switching Protocols to an upgrade request: the response head goes to
 * the client and both directions become a raw tunnel, idle-bounded by the
 * read timeout and independent of later configuration changes. */
static int tunnel_start(struct conn *c, struct upstream *u)
{
	struct shard *sh = c->s.sh;
	size_t cap = u->head.len + 256;
	char *buf = malloc(cap);
	int n = buf ? http1_rewrite_response(&u->head, &u->info, &u->parser, false, false, false,
					     NULL, buf, cap)
		    : -ENOMEM;
	if (n < 0) {
		free(buf);
		response_head_fail(c, n);
		return -1;
	}
	if (!client_push(c, buf, (uint32_t)n, buf))
		return -1;
	if (u->st)
		balancer_done(&sh->bal, u->st, true, sh->now_ms - u->t_start, sh->now_ms);
	upstream_uncount(u); /* a tunnel may idle for hours */
	upstream_body_mode(u, true);
	replay_release(c);
	c->tunnel_idle_ms = read_timeout(c);
	c->flags |= C_F_TUNNEL | C_F_SENT;
	c->rq = RQ_DONE;
	c->rs = RS_BODY;
	/* The tunnel no longer needs the snapshot: let it go. */
	snapref_put(sh, c->sref);
	c->sref = NULL;
	c->backend = NULL;
	log_debug("proxy", "tunnel to %s open", u->ep.text);
	return 0;
}

/* Moves whole received chunks from one side of a tunnel to the other.
 * Returns false when a chunk could not be queued (out of memory). */
static bool tunnel_move(struct stream *from, struct stream *to)
{
	while (!stream_rx_empty(from) && stream_tx_room(to)) {
		struct rxchunk *ch = stream_rx_front(from);
		if (stream_tx_push(to, stream_chunk_data(from, ch), ch->len, ch->bid, NULL) < 0)
			return false;
		stream_rx_consume(from, ch->len);
	}
	return true;
}

static void pump_tunnel(struct conn *c)
{
	struct upstream *u = c->up;
	const uint16_t gone = ST_F_EOF | ST_F_ERROR;

	if (!u) {
		conn_abort(c);
		return;
	}
	if (!tunnel_move(&c->s, &u->s) || !tunnel_move(&u->s, &c->s) ||
	    ((c->s.flags | u->s.flags) & ST_F_ERROR)) {
		conn_abort(c);
		return;
	}
	/* One side closed: deliver what is queued, then close both. */
	if (((c->s.flags & gone) && stream_rx_empty(&c->s)) ||
	    ((u->s.flags & gone) && stream_rx_empty(&u->s))) {
		if (stream_tx_idle(&c->s) && stream_tx_idle(&u->s))
			conn_abort(c);
	}
}

static int response_head(struct conn *c, struct upstream *u)
{
	llhttp_t *p = &u->parser;
	int status = p->status_code;

	http1_head_scan(&u->head, p, &u->info);
	if (u->info.bad_length) {
		/* e.g. "chunked\t": llhttp reads the body to the close, a client
		 * reading the forwarded "chunked" would stop at the first
		 * "0\r\n\r\n" and take the rest for the next response. */
		upstream_fail(c, 502, FAIL_INVALID,
			      "invalid response head: a Transfer-Encoding read two ways, or in "
			      "several headers or with empty codings");
		return -1;
	}
	/* Framing the head declares, whether or not a body follows. */
	bool declared = (p->flags & (F_CHUNKED | F_TRANSFER_ENCODING)) ||
			((p->flags & F_CONTENT_LENGTH) && p->content_length);
	if (u->info.bad_field) {
		/* RFC 9112 5.2: a proxy answers a folded response with 502 (or
		 * unfolds it); forwarded, its line break would end the head
		 * early. nginx refuses such heads as well. */
		upstream_fail(c, 502, FAIL_INVALID,
			      "invalid response head: a header folded over lines or a name "
			      "that is not a token");
		return -1;
	}
	if (status == 101 && (c->flags & C_F_UPGRADE))
		return tunnel_start(c, u);
	if (status < 200) {
		u->answered = true;
		if (status == 101) {
			upstream_fail(c, 502, FAIL_INVALID,
				      "101 Switching Protocols without an upgrade request");
			return -1;
		}
		if (declared) {
			/* Forbidden (RFC 9110 8.6), and whatever bytes came as
			 * that body could pass for the final response. */
			upstream_fail(c, 502, FAIL_INVALID, "a 1xx response that declares a body");
			return -1;
		}
		if (!llhttp_should_keep_alive(p)) {
			/* "Connection: close" or HTTP/1.0 on a 1xx: llhttp would
			 * discard everything after it, the final response too. */
			upstream_fail(c, 502, FAIL_INVALID, "a 1xx response that closes the connection");
			return -1;
		}
		if (!(status == 100 && (c->flags & C_F_CONTINUE)) && !(c->flags & C_F_HTTP10)) {
			char *buf = malloc(u->head.len + 256);
			int n = buf ? http1_rewrite_response(&u->head, &u->info, p, false, false,
							     false, NULL, buf, u->head.len + 256)
				    : -ENOMEM;
			if (n < 0) {
				free(buf);
				response_head_fail(c, n);
				return -1;
			}
			if (!client_push(c, buf, (uint32_t)n, buf))
				return -1;
		}
		p->flags |= F_SKIPBODY; /* whatever framing headers it has */
		parser_kick(p, &u->head); /* the 1xx message ends with its head */
		http1_head_reset(&u->head);
		return 0;
	}
	struct shard *sh = c->s.sh;
	if (u->st)
		if (balancer_done(&sh->bal, u->st, status < 500, sh->now_ms - u->t_start, sh->now_ms))
			log_warn("proxy", "endpoint %s of %s ejected for %llums after %u failures in a "
					  "row (last: status %d)",
				 u->ep.text, c->backend->name, (unsigned long long)u->st->backoff_ms,
				 u->st->fails, status);
	replay_release(c);
	if (c->flags & C_F_UPGRADE)
		c->flags |= C_F_CLOSE_AFTER; /* refused upgrade: the parser cannot go on */
	/* No body, whatever the head says (RFC 9112 6.3): llhttp 8 reads one
	 * after a 204 or 304 unless told, and a client would take it for the
	 * next response. */
	if ((c->flags & C_F_HEAD) || status == 204 || status == 304)
		p->flags |= F_SKIPBODY;
	bool dechunk = (c->flags & C_F_HTTP10) && (p->flags & F_CHUNKED) && !(p->flags & F_SKIPBODY);
	if (dechunk) {
		c->flags |= C_F_DECHUNK;
		c->flags |= C_F_CLOSE_AFTER;
	}
	if (llhttp_message_needs_eof(p) || c->s.sh->stopping)
		c->flags |= C_F_CLOSE_AFTER;
	bool close = c->flags & C_F_CLOSE_AFTER;
	const char *hsts = c->s.tls ? c->s.sh->cfg->hsts : NULL;
	size_t cap = u->head.len + 256 + (hsts ? strlen(hsts) : 0);
	/* Room for a small body, appended to the head (one send). */
	size_t room = (p->flags & F_CONTENT_LENGTH) && p->content_length <= 4096 && !dechunk
			      ? (size_t)p->content_length
			      : 0;
	uint32_t got;
	char *buf = blk_alloc(cap + room, &got);
	int n = buf ? http1_rewrite_response(&u->head, &u->info, p, close,
					     (c->flags & C_F_HTTP10) && !close, dechunk, hsts, buf, cap)
		    : -ENOMEM;
	if (n < 0) {
		free(buf);
		response_head_fail(c, n);
		return -1;
	}
	if (stream_tx_push_heap(&c->s, buf, (uint32_t)n, got) < 0) {
		conn_abort_nomem(c, "a send queue"); /* no body without its head */
		return -1;
	}
	c->flags |= C_F_SENT;
	c->rs = RS_BODY;
	if (parser_kick(p, &u->head) == HTTP1_EV_MESSAGE) {
		/* A message without a body: the connection goes back to the
		 * pool, unless its head declared one (a HEAD response, or a
		 * 204/304 with a length: an upstream that sends that body
		 * anyway, even later, would answer the next request with it)
		 * or bytes came after the head. */
		response_done(c, u);
		if (declared || !stream_rx_empty(&u->s))
			u->reusable = false;
	} else {
		upstream_body_mode(u, false);
	}
	if (c->rs == RS_BODY && !c->s.tls && splice_wanted(sh, p, c->flags & C_F_HEAD) && !dechunk) {
		/* (Never under TLS: the bytes must be encrypted on the way.) */
		c->flags |= C_F_SPLICE_PENDING;
		u->s.flags |= ST_F_RX_PAUSED;
		stream_want_rx(&u->s); /* cancels the multishot recv */
	}
	return 0;
}

/* The response body goes by splice once everything received before is
 * forwarded and the upstream's recv has stopped. Returns true while the
 * splice owns the response. */
static bool response_splice(struct conn *c, struct upstream *u)
{
	if (c->sp) {
		int r = splice_pump(c);
		upstream_timer(c, u);
		if (r < 0) {
			log_warn("proxy", "upstream %s of %s: splice: %s", u->ep.text,
				 c->backend->name, strerror(-r));
			conn_abort(c);
			return true;
		}
		if (r == 0)
			return true;
		splice_free(c);
		c->flags &= ~C_F_SPLICE_PENDING;
		u->s.flags &= (uint16_t)~ST_F_RX_PAUSED;
		response_done(c, u);
		/* The splice read exactly the body: bytes after it wait in the
		 * socket, where the pool's check of the receive queue does
		 * not see them. */
		int pending = 0;
		if (ioctl(u->s.fd, FIONREAD, &pending) < 0 || pending > 0)
			u->reusable = false;
		return false;
	}
	if (!(c->flags & C_F_SPLICE_PENDING) || c->rs != RS_BODY)
		return false;
	if (!stream_rx_empty(&u->s) || (u->s.flags & ST_F_RX_ARMED) || !stream_tx_idle(&c->s))
		return false; /* forward what is already here first */
	if (!u->parser.content_length || (u->s.flags & (ST_F_EOF | ST_F_ERROR))) {
		c->flags &= ~C_F_SPLICE_PENDING;
		u->s.flags &= (uint16_t)~ST_F_RX_PAUSED;
		return false;
	}
	if (splice_start(c) < 0) {
		c->flags &= ~C_F_SPLICE_PENDING;
		u->s.flags &= (uint16_t)~ST_F_RX_PAUSED;
		return false;
	}
	return response_splice(c, u);
}

/* The response is complete: may the upstream connection serve again? */
static void response_done(struct conn *c, struct upstream *u)
{
	c->rs = RS_DONE;
	c->flags &= ~C_F_SPLICE_PENDING;
	u->s.flags &= (uint16_t)~ST_F_RX_PAUSED;
	u->nreq++;
	u->reusable = c->rq == RQ_DONE && !(u->s.flags & (ST_F_EOF | ST_F_ERROR)) &&
		      u->nreq < c->s.sh->cfg->upstream_keepalive_requests &&
		      !(u->parser.flags & F_CONNECTION_CLOSE) && u->parser.http_minor >= 1;
}

static void pump_response(struct conn *c)
{
	struct upstream *u = c->up;

	if (response_splice(c, u))
		return;
	while (c->up == u && (c->rs == RS_HEAD || c->rs == RS_BODY) && !stream_rx_empty(&u->s) &&
	       stream_tx_room(&c->s)) {
		if (c->rs == RS_HEAD) {
			int r = read_head(&u->s, &u->parser, &u->head);
			if (r == 0)
				break;
			if (r < 0) {
				response_head_fail(c, r);
				return;
			}
			if (response_head(c, u) < 0)
				return;
			continue;
		}
		struct rxchunk *ch = stream_rx_front(&u->s);
		char *data = stream_chunk_data(&u->s, ch);
		llhttp_errno_t err;
		uint32_t used;
		if (body_forward(&c->s, &u->parser, &u->head, NULL, data, ch->len, ch->bid,
				 c->flags & C_F_DECHUNK, &err, &used) < 0) {
			log_warn("proxy", "upstream %s of %s: invalid response body: %s", u->ep.text,
				 c->backend->name,
				 err ? llhttp_get_error_reason(&u->parser) : "out of memory");
			conn_abort(c);
			return;
		}
		stream_rx_consume(&u->s, used);
		if (err == HPE_PAUSED) {
			response_done(c, u);
			llhttp_resume(&u->parser);
			if (!stream_rx_empty(&u->s))
				u->reusable = false; /* bytes after the response: not HTTP */
		}
	}
	if (c->up != u || !stream_rx_empty(&u->s))
		return;
	if (response_splice(c, u))
		return;
	if (!(u->s.flags & (ST_F_EOF | ST_F_ERROR)))
		return;
	/* The upstream closed (or failed) with nothing left to parse. */
	if (c->rs == RS_HEAD && (u->s.flags & ST_F_ERROR) && u->s.err == -ENOMEM) {
		response_head_fail(c, -ENOMEM); /* ours, not the upstream's */
	} else if (c->rs == RS_HEAD) {
		upstream_fail(c, 502, FAIL_ERROR,
			      u->s.flags & ST_F_ERROR ? strerror(-u->s.err)
						      : "closed the connection before responding");
	} else if (c->rs == RS_BODY) {
		u->head.event = HTTP1_EV_NONE;
		llhttp_errno_t err = llhttp_finish(&u->parser);
		if ((err == HPE_OK || err == HPE_PAUSED) && u->head.event == HTTP1_EV_MESSAGE &&
		    !(u->s.flags & ST_F_ERROR)) {
			response_done(c, u);
			u->reusable = false;
		} else {
			log_warn("proxy", "upstream %s of %s closed in the middle of a response",
				 u->ep.text, c->backend->name);
			conn_abort(c);
		}
	}
}

/* ---- the connection's driver ---- */

/* Lets go of the forwarded request head. An upstream stream that still
 * holds it (a send in flight or queued, e.g. when the client goes away
 * mid-request) takes it over and frees it after its send completes or is
 * cancelled, so the kernel never reads freed memory. */
static void fwd_head_release(struct conn *c, struct upstream *u)
{
	if (c->fwd_head && !(u && stream_tx_adopt(&u->s, c->fwd_head, c->fwd_cap)))
		blk_free(c->fwd_head, c->fwd_cap);
	c->fwd_head = NULL;
}

static void finish_request(struct conn *c)
{
	struct shard *sh = c->s.sh;
	struct upstream *u = c->up;

	/* The keep-alive timeout counts from the end of the last request: a
	 * connection whose answers are all local (404s) never leaves the
	 * idle state's timer class otherwise, and would close one timeout
	 * after its first request however busy. */
	timer_del(&c->s.timer);

	if (u) {
		c->up = NULL;
		upstream_unaccount(u);
		if (u->reusable && !sh->stopping &&
		    sh->pool_idle < sh->cfg->upstream_keepalive_conns) {
			pool_put(sh, u);
		} else {
			u->c = NULL;
			stream_close(&u->s);
		}
	}
	if (c->sref) {
		snapref_put(sh, c->sref);
		c->sref = NULL;
	}
	replay_release(c);
	fwd_head_release(c, u);
	c->backend = NULL;
	c->ntried = 0;
	c->rq = RQ_HEAD;
	c->rs = RS_NONE;
	c->s.flags &= (uint16_t)~ST_F_ONESHOT;
	c->body_bytes = 0;
	c->flags &= C_F_CLOSE_AFTER | C_F_LINGER | C_F_CLIENT_CLOSE;
	http1_head_free(&c->head); /* idle connections hold no buffers */
}

static void update_client_timer(struct conn *c)
{
	struct shard *sh = c->s.sh;
	struct timer *t = &c->s.timer;

	if (c->flags & C_F_LINGER)
		return;
	if (c->rq == RQ_HEAD && c->rs == RS_NONE && !stream_tx_idle(&c->s)) {
		/* Answers still going out (pipelined requests wait for room in
		 * the send queue): the client is slow to read, not idle. */
		timer_set(sh, t, T_CLIENT_BODY);
	} else if (c->rq == RQ_HEAD && c->rs == RS_NONE) {
		if (c->head.len || c->nreq == 0) {
			if (t->cls != T_CLIENT_HEADER)
				timer_set(sh, t, T_CLIENT_HEADER);
		} else if (t->cls != T_CLIENT_IDLE) {
			timer_set(sh, t, T_CLIENT_IDLE);
		}
	} else if ((c->rq == RQ_BODY && stream_rx_empty(&c->s)) || !stream_tx_idle(&c->s)) {
		timer_set(sh, t, T_CLIENT_BODY);
	} else {
		timer_del(t);
	}
}

static void conn_drive(struct conn *c)
{
	struct stream *s = &c->s;

	if (s->flags & ST_F_CLOSING)
		return;
	if (c->flags & C_F_LINGER) {
		stream_drop_rx(s);
		if (s->flags & (ST_F_EOF | ST_F_ERROR))
			stream_close(s);
		else
			stream_want_rx(s);
		return;
	}
	if (s->flags & ST_F_ERROR) {
		conn_abort(c);
		return;
	}
	if (c->flags & C_F_TUNNEL) {
		pump_tunnel(c);
		if (s->flags & ST_F_CLOSING)
			return;
		timer_del(&s->timer);
		timer_set_ms(s->sh, &c->up->s.timer, T_PROXY_READ, c->tunnel_idle_ms);
		stream_flush(s);
		stream_want_rx(s);
		stream_flush(&c->up->s);
		stream_want_rx(&c->up->s);
		return;
	}
	for (;;) {
		if (c->rq == RQ_HEAD && c->rs == RS_NONE) {
			if (c->flags & C_F_CLOSE_AFTER) {
				if (!stream_rx_empty(s)) /* more after all: drain it */
					c->flags &= ~C_F_CLIENT_CLOSE;
				stream_drop_rx(s);
				break;
			}
			/* A request is read only when its answer has room in the
			 * send queue (local answers, 404s say, go out eight at a
			 * time): else a send completes first. */
			if (!stream_tx_room(s))
				break;
			int r = read_head(s, &c->parser, &c->head);
			if (r == 0) {
				if (s->flags & ST_F_EOF) {
					stream_close(s);
					return;
				}
				break;
			}
			if (r == -ENOMEM) {
				log_warn("proxy", "out of memory for a request head: 503");
				respond_local(c, 503, true);
			} else if (r < 0) {
				respond_local(c, r == -E2BIG ? 431 : 400, true);
			} else {
				c->flags &= ~C_F_KICKED;
				start_request(c);
			}
		}
		if (s->flags & ST_F_CLOSING)
			return;
		if (c->rq == RQ_BODY)
			pump_request(c);
		if (s->flags & ST_F_CLOSING)
			return;
		if (c->up && (c->rs == RS_HEAD || c->rs == RS_BODY))
			pump_response(c);
		if (s->flags & ST_F_CLOSING)
			return;
		if (c->rs == RS_DONE && c->rq == RQ_BODY) {
			/* Answered before the whole body arrived (an upstream's early
			 * error, or ours): the rest of the body is not forwarded and
			 * the connection closes after the response. */
			upstream_detach_close(c);
			c->flags |= C_F_CLOSE_AFTER;
			request_abandon(c);
			stream_drop_rx(s);
		}
		if (c->rq == RQ_DONE && c->rs == RS_DONE) {
			finish_request(c);
			if (!stream_rx_empty(s) && !(c->flags & C_F_CLOSE_AFTER))
				continue; /* a pipelined request is waiting */
		}
		break;
	}
	if ((s->flags & ST_F_EOF) && c->rq == RQ_HEAD && c->rs == RS_NONE && stream_rx_empty(s)) {
		if (stream_tx_idle(s)) {
			stream_close(s);
			return;
		}
		c->flags |= C_F_CLOSE_AFTER;
	}
	if ((c->flags & C_F_CLOSE_AFTER) && c->rs == RS_NONE) {
		stream_flush(s);
		conn_close_graceful(c);
		if (s->flags & ST_F_CLOSING)
			return;
	}
	update_client_timer(c);
	stream_flush(s);
	stream_want_rx(s);
	if (c->up) {
		stream_flush(&c->up->s);
		stream_want_rx(&c->up->s);
	}
}

/* ---- events ---- */

void proxy_accept(struct shard *sh, int fd, bool tls)
{
	struct conn *c = calloc(1, sizeof(*c));

	if (!c || (!sh->scratch && !(sh->scratch = malloc(sh->cfg->max_header_size)))) {
		log_warn("proxy", "out of memory for a new connection: closed");
		free(c);
		close(fd);
		return;
	}
	sh->scratch_cap = sh->cfg->max_header_size;
	/* TCP_NODELAY comes from the listening socket (net.c): accepted
	 * sockets inherit it, so no setsockopt per connection. */
	stream_init(&c->s, sh, fd, STREAM_CLIENT);
	if (tls) {
		/* The certificates of the configuration current at accept time;
		 * a later one applies to later handshakes. */
		void *ctx = sh->cur ? sh->cur->snap->tls_ctx : NULL;
		c->s.tls = ctx && sh->cfg->tls_ops ? sh->cfg->tls_ops->conn_new(ctx) : NULL;
		if (!c->s.tls) {
			log_warn("proxy", "%s: a TLS connection closed",
				 ctx ? "out of memory for its TLS state" : "no certificates loaded yet");
			sh->nstreams--;
			free(c);
			close(fd);
			return;
		}
	}
	llhttp_init(&c->parser, HTTP_REQUEST, &sh->req_settings);
	c->parser.data = &c->head;
	c->head.limit = sh->cfg->max_header_size;
	c->next = &sh->conns;
	c->prev = sh->conns.prev;
	sh->conns.prev->next = c;
	sh->conns.prev = c;
	sh->nconns++;
	STAT_SET(sh, active_conns, sh->nconns);
	timer_set(sh, &c->s.timer, T_CLIENT_HEADER);
	stream_want_rx(&c->s);
}

void proxy_on_event(struct stream *s)
{
	if (s->kind == STREAM_CLIENT) {
		conn_drive(conn_of(s));
		return;
	}
	struct upstream *u = up_of(s);
	if (!u->c) {
		/* Idle: any input or a close ends it. Otherwise the recv must stay
		 * armed to notice a close: a response that finished on the
		 * multishot recv while its cancel (one recv at a time for the
		 * body) was on the way reaches the pool with that recv still
		 * armed, and its cancellation lands here. */
		if (!stream_rx_empty(s) || (s->flags & (ST_F_EOF | ST_F_ERROR))) {
			pool_remove(s->sh, u);
			stream_close(s);
		} else {
			stream_want_rx(s);
		}
		return;
	}
	upstream_timer(u->c, u);
	conn_drive(u->c);
}

void proxy_on_timeout(struct stream *s, enum timer_class cls)
{
	if (s->kind == STREAM_UPSTREAM) {
		struct upstream *u = up_of(s);
		if (!u->c) {
			pool_remove(s->sh, u);
			stream_close(s);
			return;
		}
		struct conn *c = u->c;
		if (c->flags & C_F_TUNNEL) {
			log_debug("proxy", "tunnel to %s idle: closing", u->ep.text);
			conn_abort(c);
			return;
		}
		upstream_fail(c, 504, FAIL_TIMEOUT,
			      cls == T_PROXY_SEND ? "timed out sending the request"
						  : "timed out waiting for the response");
		if (!(c->s.flags & ST_F_CLOSING))
			conn_drive(c);
		return;
	}
	struct conn *c = conn_of(s);
	if (cls == T_LINGER || cls == T_CLIENT_IDLE)
		log_debug("proxy", "closing an idle client connection");
	else
		log_debug("proxy", "client connection timed out (%s, request %u)",
			  cls == T_CLIENT_HEADER ? "request head" : "request body or response write",
			  c->nreq);
	conn_abort(c);
}

void proxy_on_closed(struct stream *s)
{
	struct shard *sh = s->sh;

	if (s->kind == STREAM_UPSTREAM) {
		struct upstream *u = up_of(s);
		pool_remove(sh, u);
		upstream_unaccount(u);
		if (u->c && u->c->up == u)
			u->c->up = NULL;
		http1_head_free(&u->head);
		free(u);
		return;
	}
	struct conn *c = conn_of(s);
	struct upstream *up = c->up;
	upstream_detach_close(c);
	fwd_head_release(c, up);
	replay_release(c);
	free(c->replay);
	splice_free(c);
	if (s->tls)
		sh->cfg->tls_ops->conn_free(s->tls);
	if (c->sref)
		snapref_put(sh, c->sref);
	http1_head_free(&c->head);
	c->prev->next = c->next;
	c->next->prev = c->prev;
	sh->nconns--;
	STAT_SET(sh, active_conns, sh->nconns);
	free(c);
}

/* First call: idle connections close, busy ones close after their response.
 * After the shutdown deadline: everything closes. */
void proxy_stop(struct shard *sh)
{
	bool force = sh->now_ms >= sh->stop_deadline;
	struct conn *c = sh->conns.next;

	while (c != &sh->conns) {
		struct conn *next = c->next;
		if (force || (c->rq == RQ_HEAD && c->rs == RS_NONE && !c->head.len)) {
			conn_abort(c);
		} else {
			c->flags |= C_F_CLOSE_AFTER;
		}
		c = next;
	}
	proxy_pool_flush(sh);
}
