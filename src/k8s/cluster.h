/* cluster.h - the control thread for the API server source (internal to
 * k8s/: controller.c calls it when --manifests is not given).
 *
 * One thread, one libcurl multi handle (apiclient.h): six informers
 * (IngressClass, Ingress, Service, EndpointSlice, Secret of type
 * kubernetes.io/tls, and the --configmap ConfigMap) fill the object store;
 * changes are debounced (--sync-period; EndpointSlice-only bursts wait at
 * most K8S_ENDPOINT_DEBOUNCE_MS) into one translation and one snapshot per
 * burst. Generation 1 is published only once every informer's first list
 * is in, so /readyz turns 200 when the whole cluster state is served.
 * When status updates are on, a Lease elects the one replica that writes
 * Ingress status (leader.h, status.h). */
#ifndef RINGRESS_K8S_CLUSTER_H
#define RINGRESS_K8S_CLUSTER_H

#include "k8s/controller.h"

/* Longest wait before an EndpointSlice-only change is published. */
#define K8S_ENDPOINT_DEBOUNCE_MS 5

struct k8s_cluster;

/* Resolves the connection (kubeconfig / in-cluster / apiserver-host) and
 * starts the control thread. Returns NULL after logging why. */
struct k8s_cluster *k8s_cluster_start(const struct k8s_options *o, k8s_publish_fn publish,
				      void *arg);

/* Stops the thread (after removing status and releasing the Lease when
 * leader, bounded to a few seconds), joins it and frees everything. */
void k8s_cluster_stop(struct k8s_cluster *c);

#endif
