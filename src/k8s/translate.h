/* translate.h - Kubernetes objects to routing rules (pure: no I/O, no state).
 *
 * Reads Ingress, IngressClass, Service and EndpointSlice objects of a store
 * and feeds a snapshot builder. Which Ingresses are ours, the order in which
 * they are applied (oldest first, so the oldest wins a conflict) and how a
 * backend is resolved to endpoints are described in translate.c. */
#ifndef RINGRESS_K8S_TRANSLATE_H
#define RINGRESS_K8S_TRANSLATE_H

#include "core/snapshot.h"
#include "k8s/store.h"

#include <stdbool.h>

/* Which Ingresses this controller serves. */
struct k8s_class_options {
	const char *ingress_class;    /* --ingress-class, e.g. "ringress" */
	const char *controller_class; /* --controller-class (IngressClass spec.controller) */
	bool watch_without_class;     /* serve Ingresses without any class */
	const char *default_ssl_certificate; /* "ns/name" of the default TLS Secret, or NULL */
};

/* Counters of one translation, for logs and tests. */
struct k8s_translate_stats {
	unsigned ingresses; /* Ingresses served */
	unsigned ignored;   /* Ingresses of other classes */
	unsigned routes;    /* path rules added */
	unsigned conflicts; /* rules dropped because an older Ingress had them */
	unsigned skipped;   /* invalid rules or backends skipped */
	unsigned backends;  /* distinct backends */
	unsigned unresolved; /* backends without a Service, port or endpoints */
};

/* Returns a builder filled from the store, owned by the caller, or NULL on
 * allocation failure. Invalid parts are skipped with a warning naming the
 * Ingress. stats may be NULL. */
/* Endpoint-only translation: a builder with prev's backends (same names,
 * same order, same options) whose endpoints are resolved again from the
 * store's Services and EndpointSlices (only the backends of services
 * ["ns/name", nservices of them] when services is not NULL; the others keep
 * prev's endpoints), and no routes; for
 * snapshot_rebuild_endpoints(prev, ...). NULL on allocation failure or when a
 * backend name cannot be read back (the caller translates everything). */
struct snapshot_builder *k8s_translate_endpoints(const struct k8s_store *s,
						 const struct snapshot *prev,
						 const char *const *services, size_t nservices,
						 struct k8s_translate_stats *stats);

struct snapshot_builder *k8s_translate(const struct k8s_store *s,
				       const struct k8s_class_options *o,
				       struct k8s_translate_stats *stats);

#endif
