/* endpoints.h - which endpoints of an EndpointSlice carry traffic.
 *
 * Kubernetes semantics (discovery.k8s.io/v1 EndpointConditions):
 *  - ready: the endpoint serves new traffic. Absent means ready.
 *  - serving: like ready, but also reported while the pod terminates.
 *    Absent means "same as ready".
 *  - terminating: the pod is shutting down. Absent means false.
 * A backend uses its ready endpoints; only when it has none at all, it uses
 * the endpoints that are serving and terminating (graceful drain: a pod
 * still answering during its shutdown beats a 503). Everything else is
 * left out. */
#ifndef RINGRESS_K8S_ENDPOINTS_H
#define RINGRESS_K8S_ENDPOINTS_H

#include <cJSON.h>

enum k8s_endpoint_use {
	K8S_EP_SKIP,     /* never used */
	K8S_EP_READY,    /* used */
	K8S_EP_FALLBACK, /* used only when the backend has no K8S_EP_READY endpoint */
};

/* Classifies one element of an EndpointSlice's endpoints[] by its
 * conditions; any input shape is accepted (non-objects are K8S_EP_SKIP). */
enum k8s_endpoint_use k8s_endpoint_use(const cJSON *endpoint);

#endif
