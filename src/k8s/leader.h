/* leader.h - leader election with a coordination.k8s.io/v1 Lease, the way
 * client-go's leaderelection (used by ingress-nginx) does it:
 *
 *  - every retry period (ttl/4) the Lease is read; if it does not exist it
 *    is created with us as holder; if we hold it, or its holder is empty,
 *    or its record has not changed for leaseDurationSeconds as measured by
 *    OUR clock since we first saw that record (no trust in remote clocks),
 *    it is updated with us as holder, carrying the resourceVersion read, so
 *    that of two candidates only one wins (the other gets 409 Conflict);
 *  - the leader renews the same way; when it could not renew for the renew
 *    deadline (ttl/2) it steps down;
 *  - on shutdown the leader releases the Lease (empty holder) so another
 *    replica takes over at its next retry instead of after ttl.
 * Leadership only decides who writes Ingress status: every replica serves
 * traffic. Runs on the control thread through apiclient.h. */
#ifndef RINGRESS_K8S_LEADER_H
#define RINGRESS_K8S_LEADER_H

#include "k8s/apiclient.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Called when this replica becomes leader (true) or stops being it. */
typedef void (*k8s_leader_fn)(void *arg, bool leader);

struct k8s_leader;

/* Elects over Lease ns/name with this identity and a lease duration of
 * ttl_ms. api must outlive it. Returns NULL on allocation failure. */
struct k8s_leader *k8s_leader_new(struct k8s_api *api, const char *ns, const char *name,
				  const char *identity, uint32_t ttl_ms, k8s_leader_fn fn,
				  void *arg);

/* Cancels its calls and frees it (without releasing). NULL accepted. */
void k8s_leader_free(struct k8s_leader *l);

/* Runs the election; returns when it wants to be called again
 * (CLOCK_MONOTONIC ms). */
int64_t k8s_leader_tick(struct k8s_leader *l, int64_t now_ms);

/* True while we hold the Lease. */
bool k8s_leader_is_leader(const struct k8s_leader *l);

/* Stops electing; if leader, starts writing an empty holder. The caller
 * keeps running the API client until k8s_leader_busy() is false. */
void k8s_leader_release(struct k8s_leader *l);

/* True while a call of the election is in flight. */
bool k8s_leader_busy(const struct k8s_leader *l);

/* Formats t (CLOCK_REALTIME) as a Kubernetes MicroTime
 * ("2024-05-01T10:00:00.123456Z") into buf of at least 32 bytes. */
const char *k8s_microtime(const struct timespec *t, char *buf, size_t len);

#endif
