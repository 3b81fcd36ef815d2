/* controller.h - the control thread: loads Kubernetes objects, translates
 * them into routing snapshots and hands each new snapshot to a callback.
 *
 * Sources, exactly one: --manifests PATH (files, inotify), or the API
 * server (list + watch: cluster.c), reached through --kubeconfig, or the
 * in-cluster service account, optionally at --apiserver-host. Both feed the
 * same object store (store.h) and the same translation (translate.h). */
#ifndef RINGRESS_K8S_CONTROLLER_H
#define RINGRESS_K8S_CONTROLLER_H

#include "core/snapshot-t.h"

#include <stdbool.h>
#include <stdint.h>

struct k8s_options {
	const char *manifests;        /* file or directory; NULL: the API server */
	const char *ingress_class;    /* --ingress-class, "ringress" */
	const char *controller_class; /* --controller-class */
	bool watch_without_class;     /* --watch-ingress-without-class */
	uint32_t debounce_ms;         /* delay between a change and the rebuild */
	const char *default_ssl_certificate; /* --default-ssl-certificate ns/name (must outlive) */

	/* API server source (used when manifests is NULL). */
	const char *kubeconfig;         /* --kubeconfig PATH, or NULL: in-cluster */
	const char *kube_context;       /* --kube-context, NULL: current-context */
	const char *apiserver_host;     /* --apiserver-host URL overrides the server */
	const char *serviceaccount_dir; /* NULL: /var/run/secrets/kubernetes.io/serviceaccount */
	const char *watch_namespace;    /* NULL or "": all namespaces */
	const char *configmap;          /* "ns/name" of the global ConfigMap, or NULL */
	const char *user_agent;         /* NULL: "ringress" */

	/* Status of our Ingresses (API source only). */
	bool update_status;                 /* --update-status */
	const char *publish_service;        /* "ns/name", or NULL */
	const char *publish_status_address; /* "a,b", or NULL */
	uint32_t status_update_interval_ms; /* default 60 s */
	bool update_status_on_shutdown;     /* remove status when the last instance stops */
	const char *election_id;            /* Lease name, "ingress-controller-leader" */
	uint32_t election_ttl_ms;           /* Lease duration, default 30 s */
};

/* Called on the control thread with a new snapshot; the callee owns the
 * one reference it carries. */
typedef void (*k8s_publish_fn)(struct snapshot *s, void *arg);

struct k8s_controller;

/* Manifests: loads the configuration once (an invalid object is logged and
 * skipped; a file that does not parse is logged and nothing is published
 * until the files parse again), publishes the first snapshot (generation
 * 1) on the caller's thread, then starts the control thread that watches
 * for changes and publishes later generations only for loads that parse.
 * API server: reads the connection settings on the caller's thread, then
 * starts the control thread, which publishes generation 1 only once the
 * first list of every kind is in the store (so /readyz waits for it).
 * Returns NULL after logging the reason when the source cannot be used at
 * all (PATH does not exist, unusable kubeconfig, not in a cluster...). */
struct k8s_controller *k8s_controller_start(const struct k8s_options *o, k8s_publish_fn publish,
					    void *arg);

/* Stops and joins the control thread, frees everything. With the API
 * source, the leader first removes the status it wrote when
 * update_status_on_shutdown (bounded to a few seconds) and releases its
 * Lease. NULL is accepted. */
void k8s_controller_stop(struct k8s_controller *c);

#endif
