/* informer.h - keeps one kind of object in the store in sync with the API
 * server: paginated list, then watch from the list's resourceVersion.
 *
 *  - list: GET ?limit=N, following metadata.continue; the pages go into a
 *    scratch store that replaces the kind in the shared store atomically
 *    once the last page is in (k8s_store_replace_kind), so a relist never
 *    shows a half-empty store. A 410 (continue token expired) restarts the
 *    list at once.
 *  - watch: GET ?watch=1&resourceVersion=RV&allowWatchBookmarks=true&
 *    timeoutSeconds=T (T random in 5..10 minutes, renewed when the server
 *    ends the stream). Events are framed by newline whatever the chunk
 *    boundaries (watch.h) and applied to the store at once. BOOKMARK only
 *    advances RV. An ERROR event or a 410 -> relist (at once for 410
 *    "expired", after a backoff otherwise).
 *  - failures (connection refused or cut, 5xx, 401/403, invalid JSON of a
 *    whole response): retry after an exponential backoff with jitter
 *    (0.5 s doubling up to 30 s; each delay drawn in [d/2, d]); a watch
 *    is resumed from its RV, a list restarts.
 *  - an invalid event or object is skipped with a log line naming the kind,
 *    the event and the object; the stream goes on.
 * Everything runs on the control thread through apiclient.h. */
#ifndef RINGRESS_K8S_INFORMER_H
#define RINGRESS_K8S_INFORMER_H

#include "k8s/apiclient.h"
#include "k8s/store.h"

#include <stdbool.h>
#include <stdint.h>

/* How a kind is reached on the API server. */
struct k8s_kind {
	const char *kind;        /* "Ingress": the store's kind */
	const char *api_version; /* "networking.k8s.io/v1" */
	const char *prefix;      /* "/apis/networking.k8s.io/v1" */
	const char *plural;      /* "ingresses" */
	bool namespaced;
};

extern const struct k8s_kind k8s_kind_ingressclass, k8s_kind_ingress, k8s_kind_service,
	k8s_kind_endpointslice, k8s_kind_secret, k8s_kind_configmap;

/* Tunables (0 fields take the defaults above). */
struct k8s_informer_tuning {
	unsigned page_limit;      /* items per list page, default 500 */
	unsigned watch_timeout_s; /* fixed timeoutSeconds instead of 300..600 */
	unsigned backoff_min_ms;  /* default 500 */
	unsigned backoff_max_ms;  /* default 30000 */
};

/* Called when the informer changed the store (an event applied or a list
 * replaced the kind). obj is the object the event added, changed or
 * deleted (valid during the call only), or NULL after a list. */
typedef void (*k8s_informer_changed_fn)(void *arg, const struct k8s_kind *kind,
					const cJSON *obj);

struct k8s_informer;

/* Creates an informer of kind for namespace ns (NULL or "": all
 * namespaces; ignored for cluster-scoped kinds) with an optional
 * fieldSelector (e.g. "type=kubernetes.io/tls"), writing into store. Both
 * api and store must outlive it. Returns NULL on allocation failure. */
struct k8s_informer *k8s_informer_new(struct k8s_api *api, struct k8s_store *store,
				      const struct k8s_kind *kind, const char *ns,
				      const char *field_selector,
				      const struct k8s_informer_tuning *tuning,
				      k8s_informer_changed_fn changed, void *arg);

/* Cancels its calls and frees it. The store keeps the objects. NULL ok. */
void k8s_informer_free(struct k8s_informer *inf);

/* Starts the first list, or a due retry. Returns the time (CLOCK_MONOTONIC
 * ms) at which it wants to be called again, or -1 for "not before some
 * I/O". */
int64_t k8s_informer_tick(struct k8s_informer *inf, int64_t now_ms);

/* True once the first complete list has been applied to the store. */
bool k8s_informer_synced(const struct k8s_informer *inf);

/* The kind it watches. */
const struct k8s_kind *k8s_informer_kind(const struct k8s_informer *inf);

/* Counters, for logs and tests. */
struct k8s_informer_stats {
	unsigned lists, watches, events, skipped, relists, failures;
};
void k8s_informer_stats(const struct k8s_informer *inf, struct k8s_informer_stats *out);

#endif
