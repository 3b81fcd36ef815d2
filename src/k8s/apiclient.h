/* apiclient.h - asynchronous HTTP calls to the Kubernetes API server.
 *
 * One libcurl multi handle drives every call (lists, watches, status and
 * lease writes) concurrently from ONE thread, the control thread: no
 * thread per watch, no locks. The owner calls k8s_api_run() in its loop;
 * callbacks run inside it, on that thread.
 *
 * Authentication: a bearer token (static, or a token file re-read every
 * minute and after a 401, since bound service-account tokens rotate) or a
 * client certificate; the server is verified with the configured CA unless
 * insecure-skip-tls-verify. HTTP/1.1 (one connection per watch). */
#ifndef RINGRESS_K8S_APICLIENT_H
#define RINGRESS_K8S_APICLIENT_H

#include "k8s/kubeconfig.h"

#include <stdbool.h>
#include <stddef.h>

struct k8s_api;
struct k8s_call;

/* Streaming: the response body is handed to the data callback as it
 * arrives (2xx responses only; other statuses are buffered for done). */
#define K8S_CALL_STREAM 1u

/* Receives body bytes of a streaming call. Returns 0 to go on, or a
 * negative errno to abort the call (done then gets that value). Must not
 * start or cancel calls (libcurl forbids it inside its callbacks). */
typedef int (*k8s_data_fn)(const char *data, size_t len, void *arg);

/* Called once when a call ends, from k8s_api_run():
 *  result  0 when an HTTP response was received completely (any status);
 *          a negative errno otherwise: -ECONNREFUSED, -ETIMEDOUT, -EPROTO
 *          (TLS), -ECONNRESET, -EIO, or what the data callback returned;
 *  status  the HTTP status, 0 when none was received;
 *  body    the buffered body, NUL-terminated (empty for a streamed 2xx);
 *  err     libcurl's error text or "" (for logs).
 * The call is freed after done returns; done may start or cancel calls. */
typedef void (*k8s_done_fn)(int result, long status, const char *body, size_t len,
			    const char *err, void *arg);

/* Creates a client for conn (which must outlive it) sending user_agent.
 * Returns NULL on failure (logged). */
struct k8s_api *k8s_api_new(const struct k8s_conn_config *conn, const char *user_agent);

/* Cancels every call (no callbacks) and frees the client. NULL accepted. */
void k8s_api_free(struct k8s_api *api);

/* Starts METHOD server+path (path starts with '/', query included). body
 * (copied) is sent with content_type when not NULL. timeout_ms bounds the
 * whole call (0: none). Returns the call, owned by the client, or NULL
 * (out of memory; logged). */
struct k8s_call *k8s_api_call(struct k8s_api *api, const char *method, const char *path,
			      const char *body, const char *content_type, unsigned flags,
			      long timeout_ms, k8s_data_fn data, k8s_done_fn done, void *arg);

/* Stops a call without calling its done callback. NULL accepted. Not from
 * a data callback. */
void k8s_api_cancel(struct k8s_api *api, struct k8s_call *call);

/* Waits up to timeout_ms for network activity or for extra_fd (-1: none)
 * to become readable, then performs I/O and runs callbacks. Returns 1 when
 * extra_fd is readable, else 0. */
int k8s_api_run(struct k8s_api *api, int timeout_ms, int extra_fd);

/* Calls in flight. */
size_t k8s_api_active(const struct k8s_api *api);

/* Makes the next call re-read the token file (after a 401). */
void k8s_api_token_expired(struct k8s_api *api);

/* Percent-encodes s for a URL query value into buf (len bytes); returns
 * buf, truncated if too small. */
const char *k8s_url_escape(const char *s, char *buf, size_t len);

#endif
