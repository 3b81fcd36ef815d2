/* store.h - the object store: every Kubernetes object the controller knows,
 * whether it came from manifest files or from the API server.
 *
 * Objects are cJSON trees owned by the store, keyed by (kind, namespace,
 * name); cluster-scoped objects use namespace "". Entries are kept sorted
 * by kind, then namespace, then name, so iteration is deterministic.
 * Not thread-safe: the control thread owns its stores. */
#ifndef RINGRESS_K8S_STORE_H
#define RINGRESS_K8S_STORE_H

#include <cJSON.h>
#include <stddef.h>

/* One stored object. All strings and obj are owned by the store. */
struct k8s_object {
	char *kind;
	char *ns;
	char *name;
	cJSON *obj;
	unsigned line;      /* where it was defined, 0 if unknown (for logs) */
	char *source;  /* file it came from, NULL if unknown */
};

struct k8s_store;

/* Returns a new empty store, or NULL on allocation failure. */
struct k8s_store *k8s_store_new(void);

/* Frees the store and every object in it. NULL is accepted. */
void k8s_store_free(struct k8s_store *s);

/* Inserts obj under (kind, ns, name), replacing (and freeing) a previous
 * object with that key. Takes ownership of obj in every case (freed on
 * error). ns NULL means "". source (copied) and line are for log lines.
 * Returns 1 when an object was replaced, 0 when inserted, -EINVAL for an
 * empty kind or name, -ENOMEM. */
int k8s_store_upsert(struct k8s_store *s, const char *kind, const char *ns, const char *name,
		     cJSON *obj, const char *source, unsigned line);

/* Removes and frees the object. Returns 0 or -ENOENT. */
int k8s_store_delete(struct k8s_store *s, const char *kind, const char *ns, const char *name);

/* Returns the object under that key, or NULL. Valid until the store changes. */
const struct k8s_object *k8s_store_get(const struct k8s_store *s, const char *kind,
				       const char *ns, const char *name);

/* Returns the objects of one kind, sorted by namespace then name, and their
 * count in *n (NULL and 0 when none). Valid until the store changes. */
const struct k8s_object *k8s_store_list(const struct k8s_store *s, const char *kind, size_t *n);

/* Replaces every object of kind by the n objects of src (which must all be
 * of that kind), for a relist; src is emptied. Returns 0 or -ENOMEM (then s
 * is unchanged and src keeps its objects). */
int k8s_store_replace_kind(struct k8s_store *s, const char *kind, struct k8s_store *src);

/* Number of objects in the store. */
size_t k8s_store_count(const struct k8s_store *s);

#endif
