/* net.h - listening sockets. */
#ifndef RINGRESS_NET_H
#define RINGRESS_NET_H

#include <stdbool.h>
#include <stdint.h>

/* Opens a TCP socket listening on addr:port (IPv4 or IPv6 literal), with
 * SO_REUSEADDR and, when reuseport is set, SO_REUSEPORT. Returns the fd,
 * -EINVAL for an address that is not a literal, or -errno. */
int net_listen(const char *addr, uint16_t port, bool reuseport, int backlog);

#endif
