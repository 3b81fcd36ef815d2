/* admin.h - the admin HTTP endpoint (/healthz, /readyz) on its own thread,
 * never on a shard's request path. */
#ifndef RINGRESS_ADMIN_H
#define RINGRESS_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

struct admin_hooks {
	bool (*healthy)(void *arg); /* every shard's loop alive */
	bool (*ready)(void *arg);   /* first configuration applied everywhere */
	void *arg;
};

struct admin;

/* Listens on bind:port and serves requests on a thread of its own.
 * Returns NULL after logging why (e.g. the port is taken). */
struct admin *admin_start(const char *bind, uint16_t port, const struct admin_hooks *hooks);

/* Stops the thread and closes the socket. NULL is accepted. */
void admin_stop(struct admin *a);

#endif
