/* controller.h - the control thread: loads Kubernetes objects, translates
 * them into routing snapshots and hands each new snapshot to a callback.
 *
 * Sources: --manifests PATH today (files, inotify); the API server later.
 * Both feed the same object store (store.h) and the same translation
 * (translate.h). */
#ifndef RINGRESS_K8S_CONTROLLER_H
#define RINGRESS_K8S_CONTROLLER_H

#include "core/snapshot-t.h"

#include <stdbool.h>
#include <stdint.h>

struct k8s_options {
	const char *manifests;        /* file or directory; required for now */
	const char *ingress_class;    /* --ingress-class, "ringress" */
	const char *controller_class; /* --controller-class */
	bool watch_without_class;     /* --watch-ingress-without-class */
	uint32_t debounce_ms;         /* delay between a change and the rebuild */
};

/* Called on the control thread with a new snapshot; the callee owns the
 * one reference it carries. */
typedef void (*k8s_publish_fn)(struct snapshot *s, void *arg);

struct k8s_controller;

/* Loads the configuration once (an invalid object is logged and skipped; a
 * file that does not parse is logged and nothing is published until the
 * files parse again), publishes the first snapshot (generation 1) on the
 * caller's thread, then starts the control thread that watches for
 * changes and publishes later generations only for loads that parse. Returns NULL after logging the reason when the
 * source cannot be used at all (e.g. PATH does not exist). */
struct k8s_controller *k8s_controller_start(const struct k8s_options *o, k8s_publish_fn publish,
					    void *arg);

/* Stops and joins the control thread, frees everything. NULL is accepted. */
void k8s_controller_stop(struct k8s_controller *c);

#endif
