/* sliceindex.c - EndpointSlices by (namespace, Service); see sliceindex.h. */
#include "k8s/sliceindex.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_SERVICE "kubernetes.io/service-name"

struct entry {
	const char *ns, *svc;
	const struct k8s_object *obj;
	size_t order; /* position in the store, to keep its order among equals */
};

struct k8s_slice_index {
	struct entry *v;
	const struct k8s_object **objs; /* v[i].obj, for find()'s result */
	size_t n;
};

static const char *service_of(const cJSON *slice)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(slice, "metadata");
	const cJSON *labels = cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, "labels")
						   : NULL;
	const cJSON *svc = cJSON_IsObject(labels)
				   ? cJSON_GetObjectItemCaseSensitive(labels, LABEL_SERVICE)
				   : NULL;
	return cJSON_IsString(svc) && svc->valuestring ? svc->valuestring : NULL;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = strcmp(x->ns, y->ns);
	if (!c)
		c = strcmp(x->svc, y->svc);
	if (!c)
		c = x->order < y->order ? -1 : x->order > y->order;
	return c;
}

/* True when "ns/svc" is one of services[0..n). */
static bool wanted(const char *const *services, size_t n, const char *ns, const char *svc)
{
	size_t nl = strlen(ns);
	for (size_t k = 0; k < n; k++)
		if (!strncmp(services[k], ns, nl) && services[k][nl] == '/' &&
		    (!svc || !strcmp(services[k] + nl + 1, svc)))
			return true;
	return false;
}

/* The index of every slice, or (services not NULL) of the slices of those
 * services only. */
static struct k8s_slice_index *index_build(const struct k8s_store *s, const char *const *services,
					   size_t nsvc)
{
	struct k8s_slice_index *ix = calloc(1, sizeof(*ix));
	size_t n;
	const struct k8s_object *sl = k8s_store_list(s, "EndpointSlice", &n);

	if (!ix)
		return NULL;
	if (!n)
		return ix;
	ix->v = malloc(n * sizeof(*ix->v));
	ix->objs = malloc(n * sizeof(*ix->objs));
	if (!ix->v || !ix->objs) {
		k8s_slice_index_free(ix);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		/* The namespace first: it needs no JSON lookup. */
		if (services && !wanted(services, nsvc, sl[i].ns, NULL))
			continue;
		const char *svc = service_of(sl[i].obj);
		if (svc && (!services || wanted(services, nsvc, sl[i].ns, svc)))
			ix->v[ix->n++] = (struct entry){sl[i].ns, svc, &sl[i], i};
	}
	if (ix->n > 1)
		qsort(ix->v, ix->n, sizeof(*ix->v), entry_cmp);
	for (size_t i = 0; i < ix->n; i++)
		ix->objs[i] = ix->v[i].obj;
	return ix;
}

struct k8s_slice_index *k8s_slice_index_new(const struct k8s_store *s)
{
	return index_build(s, NULL, 0);
}

struct k8s_slice_index *k8s_slice_index_new_only(const struct k8s_store *s,
						 const char *const *services, size_t nsvc)
{
	return index_build(s, services, nsvc);
}

void k8s_slice_index_free(struct k8s_slice_index *ix)
{
	if (!ix)
		return;
	free(ix->v);
	free(ix->objs);
	free(ix);
}

/* First entry >= (ns, svc). */
static size_t lower(const struct k8s_slice_index *ix, const char *ns, const char *svc)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(ix->v[mid].ns, ns);
		if (!c)
			c = strcmp(ix->v[mid].svc, svc);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct k8s_object *const *k8s_slice_index_find(const struct k8s_slice_index *ix,
						     const char *ns, const char *svc, size_t *n)
{
	size_t lo = lower(ix, ns, svc), hi = lo;

	while (hi < ix->n && !strcmp(ix->v[hi].ns, ns) && !strcmp(ix->v[hi].svc, svc))
		hi++;
	*n = hi - lo;
	return hi > lo ? &ix->objs[lo] : NULL;
}
