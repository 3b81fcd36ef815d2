/* admin.c - /healthz and /readyz over plain blocking sockets on one thread.
 * Requests are parsed with llhttp; answers are tiny. */
#include "core/admin.h"

#include "core/log.h"
#include "core/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <llhttp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct admin {
	int fd;
	int stop_pipe[2];
	pthread_t thread;
	struct admin_hooks hooks;
};

struct admin_req {
	char url[256];
	size_t url_len;
	bool done;
};

static int on_url(llhttp_t *p, const char *at, size_t len)
{
	struct admin_req *r = p->data;
	size_t n = len < sizeof(r->url) - 1 - r->url_len ? len : sizeof(r->url) - 1 - r->url_len;
	memcpy(r->url + r->url_len, at, n);
	r->url_len += n;
	r->url[r->url_len] = 0;
	return 0;
}

static int on_complete(llhttp_t *p)
{
	((struct admin_req *)p->data)->done = true;
	return 0;
}

static void reply(int fd, int status, const char *body)
{
	char buf[512];
	const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found"
			   : status == 400 ? "Bad Request" : "Service Unavailable";
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 %d %s\r\nServer: ringress\r\nContent-Type: text/plain\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 status, reason, strlen(body), body);
	ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
	(void)w;
}

static void serve(struct admin *a, int fd)
{
	struct admin_req req = {0};
	llhttp_settings_t s;
	llhttp_t p;
	char buf[4096];
	struct timeval tv = {.tv_sec = 2};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	llhttp_settings_init(&s);
	s.on_url = on_url;
	s.on_message_complete = on_complete;
	llhttp_init(&p, HTTP_REQUEST, &s);
	p.data = &req;
	while (!req.done) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return;
		if (llhttp_execute(&p, buf, (size_t)n) != HPE_OK && !req.done) {
			reply(fd, 400, "bad request\n");
			return;
		}
	}
	char *q = strchr(req.url, '?');
	if (q)
		*q = 0;
	if (!strcmp(req.url, "/healthz")) {
		bool ok = a->hooks.healthy(a->hooks.arg);
		reply(fd, ok ? 200 : 503, ok ? "ok\n" : "a shard is not responding\n");
	} else if (!strcmp(req.url, "/readyz")) {
		bool ok = a->hooks.ready(a->hooks.arg);
		reply(fd, ok ? 200 : 503, ok ? "ok\n" : "configuration not applied yet\n");
	} else {
		reply(fd, 404, "not found\n");
	}
}

static void *admin_main(void *arg)
{
	struct admin *a = arg;
	struct pollfd pfd[2] = {{.fd = a->fd, .events = POLLIN}, {.fd = a->stop_pipe[0], .events = POLLIN}};

	pthread_setname_np(pthread_self(), "admin");
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0) {
				serve(a, fd);
				close(fd);
			}
		}
	}
	return NULL;
}

struct admin *admin_start(const char *bind_addr, uint16_t port, const struct admin_hooks *hooks)
{
	struct admin *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->hooks = *hooks;
	a->fd = net_listen(bind_addr, port, false, 64);
	if (a->fd < 0) {
		log_error("admin", "cannot listen on %s:%u: %s (use --admin-port)", bind_addr, port,
			  strerror(-a->fd));
		goto err;
	}
	if (pipe2(a->stop_pipe, O_CLOEXEC) < 0)
		goto err_fd;
	if (pthread_create(&a->thread, NULL, admin_main, a))
		goto err_pipe;
	return a;
err_pipe:
	close(a->stop_pipe[0]);
	close(a->stop_pipe[1]);
err_fd:
	close(a->fd);
err:
	free(a);
	return NULL;
}

void admin_stop(struct admin *a)
{
	if (!a)
		return;
	ssize_t w = write(a->stop_pipe[1], "x", 1);
	(void)w;
	pthread_join(a->thread, NULL);
	close(a->stop_pipe[0]);
	close(a->stop_pipe[1]);
	close(a->fd);
	free(a);
}
