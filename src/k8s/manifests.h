/* manifests.h - loading Kubernetes objects from files (--manifests PATH).
 *
 * PATH is one file or a directory of *.yaml, *.yml and *.json files (not
 * recursive, hidden files skipped, read in name order). YAML files may hold
 * several documents; a document (or JSON file) may be a `kind: List` whose
 * items are loaded. Kept: IngressClass and Ingress (networking.k8s.io/v1),
 * Service (v1) and EndpointSlice (discovery.k8s.io/v1); other kinds are
 * ignored (debug log). Namespaced objects without a namespace get "default".
 *
 * Failure policy:
 *  - a file that cannot be read or parsed (YAML/JSON syntax) fails the WHOLE
 *    load ("file:line:column: reason" logged for every broken file): the
 *    caller keeps serving its last good configuration, so a half-written
 *    file never removes routes;
 *  - an object that parses but is invalid (not a mapping, no kind, no
 *    metadata.name, unsupported apiVersion of a kept kind...) is skipped
 *    alone with "file:line kind namespace/name: reason";
 *  - the same kind/namespace/name defined twice: the later file (or the
 *    later document in a file) wins, with a warning. */
#ifndef RINGRESS_K8S_MANIFESTS_H
#define RINGRESS_K8S_MANIFESTS_H

#include "k8s/store.h"

/* Counters of one load, for logs and tests. */
struct k8s_manifests_stats {
	unsigned files;   /* files read */
	unsigned objects; /* objects stored */
	unsigned skipped; /* invalid objects skipped */
	unsigned ignored; /* objects of kinds we do not use */
};

/* Loads PATH into store (normally a new, empty store that the caller swaps
 * in on success). stats may be NULL.
 * Returns 0; -ENOENT when PATH does not exist; -EINVAL when a file could not
 * be parsed; -ENOMEM; or another -errno from reading. On error the store may
 * hold part of the objects and should be discarded. */
int k8s_manifests_load(const char *path, struct k8s_store *store,
		       struct k8s_manifests_stats *stats);

#endif
