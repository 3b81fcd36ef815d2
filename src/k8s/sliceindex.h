/* sliceindex.h - EndpointSlices of a store indexed by (namespace, Service).
 *
 * The translation resolves each backend to the EndpointSlices labelled
 * kubernetes.io/service-name=<service> in the Ingress's namespace. Scanning
 * every slice for every backend costs O(backends x slices): about 1 s for
 * 10,000 of each. This index sorts the slices once per translation
 * (O(S log S)) and answers each backend with a binary search. */
#ifndef RINGRESS_K8S_SLICEINDEX_H
#define RINGRESS_K8S_SLICEINDEX_H

#include "k8s/store.h"

#include <stddef.h>

struct k8s_slice_index;

/* Indexes the EndpointSlices of s (slices without the service-name label
 * are left out). The index points into s: valid until s changes. Returns
 * NULL on allocation failure. */
struct k8s_slice_index *k8s_slice_index_new(const struct k8s_store *s);

/* Frees the index (not the objects). NULL accepted. */
void k8s_slice_index_free(struct k8s_slice_index *ix);

/* An index of only the slices of services ("namespace/name", n of them):
 * one pass over the slices, no sort of all of them (endpoint-only updates).
 * NULL on allocation failure. */
struct k8s_slice_index *k8s_slice_index_new_only(const struct k8s_store *s,
						 const char *const *services, size_t n);

/* The slices of Service ns/svc, in store order (by slice name), and their
 * count in *n; NULL and 0 when none. */
const struct k8s_object *const *k8s_slice_index_find(const struct k8s_slice_index *ix,
						     const char *ns, const char *svc, size_t *n);

#endif
