/* watch.h - the wire format of Kubernetes list and watch responses (pure:
 * no I/O).
 *
 * A watch response is a stream of JSON objects {"type": T, "object": O},
 * one per line, cut into chunks wherever the network and the server
 * please: struct k8s_linebuf reassembles lines whatever the boundaries.
 * k8s_watch_parse turns one line into an event; k8s_object_check validates
 * an object before it goes into the store. */
#ifndef RINGRESS_K8S_WATCH_H
#define RINGRESS_K8S_WATCH_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Longest line accepted (one object); longer ones fail the stream. */
#define K8S_LINE_MAX (64u << 20)

struct k8s_linebuf {
	char *buf;
	size_t len, cap;
	size_t max; /* 0: K8S_LINE_MAX */
};

/* Called with each complete line (without its '\n' and a trailing '\r';
 * never NULL; empty lines are not reported). Returns 0 to go on, or a
 * negative value that stops k8s_linebuf_feed and is returned by it. */
typedef int (*k8s_line_fn)(const char *line, size_t len, void *arg);

/* Appends len bytes of data; calls fn for every line it completes. Keeps a
 * partial last line for the next call. Returns 0, -E2BIG when a line grows
 * beyond the maximum (the buffer is then reset), -ENOMEM, or what fn
 * returned. */
int k8s_linebuf_feed(struct k8s_linebuf *lb, const char *data, size_t len, k8s_line_fn fn,
		     void *arg);

/* Bytes of an unfinished line held. */
static inline size_t k8s_linebuf_pending(const struct k8s_linebuf *lb)
{
	return lb->len;
}

/* Forgets any partial line (e.g. when a stream restarts); keeps memory. */
void k8s_linebuf_reset(struct k8s_linebuf *lb);

/* Frees the buffer; lb can be reused afterwards. */
void k8s_linebuf_free(struct k8s_linebuf *lb);

enum k8s_event_type {
	K8S_EV_ADDED,
	K8S_EV_MODIFIED,
	K8S_EV_DELETED,
	K8S_EV_BOOKMARK,
	K8S_EV_ERROR,
};

struct k8s_event {
	enum k8s_event_type type;
	cJSON *object; /* owned by the caller after a successful parse */
	const char *rv; /* object's metadata.resourceVersion (inside object) or NULL */
	int code;       /* ERROR: the Status code (e.g. 410), 0 if absent */
};

/* Parses one watch line. Returns 0 and fills ev (the caller frees
 * ev->object with cJSON_Delete), or -EINVAL with a short reason in why
 * (whylen bytes) when the line is not JSON, has no known type or no
 * object. ERROR events carry the Status object. */
int k8s_watch_parse(const char *line, size_t len, struct k8s_event *ev, char *why,
		    size_t whylen);

/* Checks an object of a list or a watch event before it is stored: a JSON
 * object whose metadata.name is a non-empty string and, when namespaced,
 * metadata.namespace too. Returns NULL when valid, else a static reason. */
const char *k8s_object_check(const cJSON *obj, bool namespaced);

/* Writes "namespace/name" (or "name", or "?") of obj into buf, for logs. */
const char *k8s_object_id(const cJSON *obj, char *buf, size_t len);

/* Prepares an object for the store: sets kind and apiVersion (list items
 * have none) and drops what ringress never reads and that can be large:
 * metadata.managedFields and the kubectl last-applied annotation.
 * Returns 0 or -ENOMEM. */
int k8s_object_trim(cJSON *obj, const char *kind, const char *api_version);

/* Returns metadata.resourceVersion of obj, or NULL. */
const char *k8s_object_rv(const cJSON *obj);

#endif
