/* splice.c - large response bodies moved upstream -> pipe -> client by the
 * kernel, never copied to user space. Two drivers, chosen by --splice-mode:
 *   poll:  splice(2) with SPLICE_F_NONBLOCK from the shard thread; when a
 *          side is not ready, an io_uring poll waits for it;
 *   uring: IORING_OP_SPLICE, which the kernel always runs in io-wq workers
 *          (bounded and pinned to the shard's CPU at ring set-up).
 * docs/benchmarks.md records how they compare with the buffer path. */
#include "core/log.h"
#include "core/shard-t.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#define PIPE_SIZE (256 * 1024)

bool splice_wanted(const struct shard *sh, const llhttp_t *resp, bool head_req)
{
	return sh->cfg->splice_mode != SPLICE_MODE_OFF && !head_req &&
	       (resp->flags & F_CONTENT_LENGTH) && !(resp->flags & F_CHUNKED) &&
	       resp->content_length >= sh->cfg->splice_threshold;
}

int splice_start(struct conn *c)
{
	struct splice_state *sp = calloc(1, sizeof(*sp));

	if (!sp)
		return -ENOMEM;
	/* io-wq workers may block on the pipe; splice(2) from the shard must
	 * not. */
	bool uring = c->s.sh->cfg->splice_mode == SPLICE_MODE_URING;
	if (pipe2(sp->pipe, (uring ? 0 : O_NONBLOCK) | O_CLOEXEC) < 0) {
		int e = -errno;
		free(sp);
		return e;
	}
	fcntl(sp->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
	int cap = fcntl(sp->pipe[1], F_GETPIPE_SZ);
	sp->cap = cap > 0 ? (uint32_t)cap : 65536;
	sp->left = c->up->parser.content_length;
	sp->started = true;
	if (c->s.sh->cfg->splice_mode == SPLICE_MODE_POLL) {
		fcntl(c->s.fd, F_SETFL, fcntl(c->s.fd, F_GETFL) | O_NONBLOCK);
		fcntl(c->up->s.fd, F_SETFL, fcntl(c->up->s.fd, F_GETFL) | O_NONBLOCK);
	}
	c->sp = sp;
	return 0;
}

void splice_free(struct conn *c)
{
	if (!c->sp)
		return;
	close(c->sp->pipe[0]);
	close(c->sp->pipe[1]);
	free(c->sp);
	c->sp = NULL;
}

static void poll_arm(struct stream *s, unsigned events)
{
	if (s->flags & ST_F_POLLING)
		return;
	struct io_uring_sqe *sqe = shard_sqe(s->sh);
	io_uring_prep_poll_add(sqe, s->fd, events);
	io_uring_sqe_set_data64(sqe, UD(s, OP_POLL));
	s->flags |= ST_F_POLLING;
	s->inflight++;
}

static int pump_poll(struct conn *c)
{
	struct splice_state *sp = c->sp;
	struct stream *up = &c->up->s;

	for (;;) {
		bool progress = false;
		if (sp->in_pipe) {
			ssize_t n = splice(sp->pipe[0], NULL, c->s.fd, NULL, sp->in_pipe,
					   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n > 0) {
				sp->in_pipe -= (uint32_t)n;
				progress = true;
			} else if (n < 0 && errno == EAGAIN) {
				poll_arm(&c->s, POLLOUT);
			} else {
				return n < 0 ? -errno : -EPIPE;
			}
		}
		if (sp->left && sp->in_pipe < sp->cap) {
			size_t want = sp->cap - sp->in_pipe;
			if (want > sp->left)
				want = (size_t)sp->left;
			ssize_t n = splice(up->fd, NULL, sp->pipe[1], NULL, want,
					   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n > 0) {
				sp->left -= (uint64_t)n;
				sp->in_pipe += (uint32_t)n;
				progress = true;
			} else if (n < 0 && errno == EAGAIN) {
				poll_arm(up, POLLIN); /* the pipe has room: no data yet */
			} else {
				return n == 0 ? -ECONNRESET : -errno;
			}
		}
		if (!progress)
			break;
	}
	return !sp->left && !sp->in_pipe;
}

static int pump_uring(struct conn *c)
{
	struct splice_state *sp = c->sp;
	struct stream *up = &c->up->s;

	if ((c->s.flags | up->flags) & ST_F_SPLICING)
		return 0;
	if (!sp->left && !sp->in_pipe)
		return 1;
	struct io_uring_sqe *sqe = shard_sqe(c->s.sh);
	if (sp->in_pipe) {
		io_uring_prep_splice(sqe, sp->pipe[0], -1, c->s.fd, -1, sp->in_pipe, SPLICE_F_MOVE);
		io_uring_sqe_set_data64(sqe, UD(&c->s, OP_SPLICE));
		c->s.flags |= ST_F_SPLICING;
		c->s.inflight++;
		sp->op_len = -(int32_t)sp->in_pipe;
	} else {
		uint32_t want = sp->left < sp->cap ? (uint32_t)sp->left : sp->cap;
		io_uring_prep_splice(sqe, up->fd, -1, sp->pipe[1], -1, want, SPLICE_F_MOVE);
		io_uring_sqe_set_data64(sqe, UD(up, OP_SPLICE));
		up->flags |= ST_F_SPLICING;
		up->inflight++;
		sp->op_len = (int32_t)want;
	}
	return 0;
}

/* Moves what it can. Returns 1 when the whole body is through, 0 while
 * waiting, or -errno. */
int splice_pump(struct conn *c)
{
	if (c->s.sh->cfg->splice_mode == SPLICE_MODE_URING)
		return pump_uring(c);
	return pump_poll(c);
}

/* A poll or IORING_OP_SPLICE of stream s completed (s not closing). */
void splice_on_cqe(struct stream *s, int op, int res)
{
	struct conn *c = s->kind == STREAM_CLIENT ? (struct conn *)s : ((struct upstream *)s)->c;

	if (op == OP_POLL) {
		s->flags &= (uint16_t)~ST_F_POLLING;
		return;
	}
	s->flags &= (uint16_t)~ST_F_SPLICING;
	if (!c || !c->sp)
		return;
	struct splice_state *sp = c->sp;
	if (res < 0 || (res == 0 && sp->op_len > 0)) {
		s->flags |= ST_F_ERROR;
		if (!s->err)
			s->err = res < 0 ? res : -ECONNRESET;
		return;
	}
	if (sp->op_len > 0) {
		sp->left -= (uint64_t)res;
		sp->in_pipe += (uint32_t)res;
	} else {
		sp->in_pipe -= (uint32_t)res;
	}
	sp->op_len = 0;
}
