/* status.h - status.loadBalancer.ingress of the Ingresses we serve.
 *
 * The addresses come from, in this order:
 *  1. --publish-service ns/name: that Service's status.loadBalancer.ingress
 *     (ip or hostname), or else its spec.externalIPs (read with a GET each
 *     round, so it may live outside --watch-namespace);
 *  2. --publish-status-address a,b: these addresses (IPs go to "ip", other
 *     names to "hostname");
 *  3. the nodes of the running ringress pods: with POD_NAME and
 *     POD_NAMESPACE set (downward API), the pods carrying our pod's labels
 *     (minus the rollout hashes) are listed and the status.hostIP of the
 *     Running ones is used.
 * The list is sorted and de-duplicated, and written only to Ingresses of
 * our class whose status differs (PATCH .../ingresses/NAME/status with a
 * JSON merge patch), by the leader only; other Ingresses are never
 * touched. A round runs every interval, when we become leader and after
 * each rebuild. On shutdown the leader removes what it wrote when
 * update-status-on-shutdown is set and no other ringress pod is running
 * (when it cannot know, it assumes it is the last one). */
#ifndef RINGRESS_K8S_STATUS_H
#define RINGRESS_K8S_STATUS_H

#include "k8s/apiclient.h"
#include "k8s/store.h"
#include "k8s/translate.h"

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

struct k8s_status_options {
	const char *publish_service;   /* "ns/name" or NULL */
	const char *publish_addresses; /* "a,b" or NULL */
	uint32_t interval_ms;          /* default 60 s */
	bool on_shutdown;
	const struct k8s_class_options *cls; /* must outlive the manager */
	const char *pod_name, *pod_namespace; /* NULL when unknown */
};

struct k8s_status;

/* Creates a manager writing through api for the Ingresses of store (both
 * must outlive it). Strings of o are copied. NULL on allocation failure. */
struct k8s_status *k8s_status_new(struct k8s_api *api, const struct k8s_store *store,
				  const struct k8s_status_options *o);

/* Cancels its calls and frees it. NULL accepted. */
void k8s_status_free(struct k8s_status *st);

/* We became leader (a round starts at once) or stopped being it (rounds
 * stop; writes in flight finish). */
void k8s_status_set_leader(struct k8s_status *st, bool leader);

/* The store changed: check again soon (coalesced with a round in flight). */
void k8s_status_kick(struct k8s_status *st);

/* Runs rounds; returns when it wants to be called again, or -1. */
int64_t k8s_status_tick(struct k8s_status *st, int64_t now_ms);

/* Starts the shutdown: removes our status if leader, on_shutdown, and the
 * last instance. The caller keeps running the client until
 * k8s_status_busy() is false (or its own deadline). */
void k8s_status_shutdown(struct k8s_status *st);

/* True while calls are in flight. */
bool k8s_status_busy(const struct k8s_status *st);

/* Counters, for logs and tests. */
struct k8s_status_stats {
	unsigned rounds, patches, errors;
};
void k8s_status_stats(const struct k8s_status *st, struct k8s_status_stats *out);

/* ---- pure helpers (exported for tests) ------------------------------------ */

/* Addresses of a Service: status.loadBalancer.ingress entries, or else
 * spec.externalIPs. Returns a new array of {"ip"} / {"hostname"} objects,
 * sorted and de-duplicated (possibly empty), or NULL on allocation failure. */
cJSON *k8s_status_from_service(const cJSON *svc);

/* Addresses from "a,b" (spaces allowed), sorted and de-duplicated. */
cJSON *k8s_status_from_list(const char *csv);

/* Sorts an array of {"ip"} / {"hostname"} objects by address (IPs first,
 * then host names) and removes duplicates and empty entries. */
void k8s_status_sort(cJSON *arr);

/* True when ingress's status.loadBalancer.ingress holds exactly the
 * addresses of desired, in the same order (ports and other fields are
 * ignored). A missing status equals an empty desired list. */
bool k8s_status_equal(const cJSON *ingress, const cJSON *desired);

#endif
