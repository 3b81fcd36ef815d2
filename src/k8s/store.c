/* store.c - a sorted array of objects keyed by (kind, namespace, name). */
#include "k8s/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct k8s_store {
	struct k8s_object *v;
	size_t n, cap;
};

static int key_cmp(const char *kind, const char *ns, const char *name,
		   const struct k8s_object *o)
{
	int c = strcmp(kind, o->kind);
	if (!c)
		c = strcmp(ns, o->ns);
	if (!c)
		c = strcmp(name, o->name);
	return c;
}

static int obj_cmp(const void *a, const void *b)
{
	const struct k8s_object *x = a;
	return key_cmp(x->kind, x->ns, x->name, b);
}

/* Index of the first entry >= key; *found tells whether it is equal. */
static size_t lower_bound(const struct k8s_store *s, const char *kind, const char *ns,
			  const char *name, int *found)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (key_cmp(kind, ns, name, &s->v[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < s->n && !key_cmp(kind, ns, name, &s->v[lo]);
	return lo;
}

static void object_clear(struct k8s_object *o)
{
	free(o->kind);
	free(o->ns);
	free(o->name);
	free(o->source);
	cJSON_Delete(o->obj);
}

struct k8s_store *k8s_store_new(void)
{
	return calloc(1, sizeof(struct k8s_store));
}

void k8s_store_free(struct k8s_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		object_clear(&s->v[i]);
	free(s->v);
	free(s);
}

int k8s_store_upsert(struct k8s_store *s, const char *kind, const char *ns, const char *name,
		     cJSON *obj, const char *source, unsigned line)
{
	struct k8s_object o = {0};
	int found;

	if (!ns)
		ns = "";
	if (!kind || !*kind || !name || !*name) {
		cJSON_Delete(obj);
		return -EINVAL;
	}
	size_t i = lower_bound(s, kind, ns, name, &found);
	if (found) {
		char *src = source ? strdup(source) : NULL;
		if (source && !src) {
			cJSON_Delete(obj);
			return -ENOMEM;
		}
		cJSON_Delete(s->v[i].obj);
		free(s->v[i].source);
		s->v[i].obj = obj;
		s->v[i].source = src;
		s->v[i].line = line;
		return 1;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		struct k8s_object *v = realloc(s->v, cap * sizeof(*v));
		if (!v) {
			cJSON_Delete(obj);
			return -ENOMEM;
		}
		s->v = v;
		s->cap = cap;
	}
	o.kind = strdup(kind);
	o.ns = strdup(ns);
	o.name = strdup(name);
	o.source = source ? strdup(source) : NULL;
	o.obj = obj;
	o.line = line;
	if (!o.kind || !o.ns || !o.name || (source && !o.source)) {
		object_clear(&o);
		return -ENOMEM;
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
	s->v[i] = o;
	s->n++;
	return 0;
}

int k8s_store_delete(struct k8s_store *s, const char *kind, const char *ns, const char *name)
{
	int found;
	size_t i = lower_bound(s, kind, ns ? ns : "", name, &found);

	if (!found)
		return -ENOENT;
	object_clear(&s->v[i]);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
	s->n--;
	return 0;
}

const struct k8s_object *k8s_store_get(const struct k8s_store *s, const char *kind,
				       const char *ns, const char *name)
{
	int found;
	size_t i = lower_bound(s, kind, ns ? ns : "", name, &found);

	return found ? &s->v[i] : NULL;
}

const struct k8s_object *k8s_store_list(const struct k8s_store *s, const char *kind, size_t *n)
{
	int found;
	size_t lo = lower_bound(s, kind, "", "", &found), hi = lo;

	while (hi < s->n && !strcmp(s->v[hi].kind, kind))
		hi++;
	*n = hi - lo;
	return hi > lo ? &s->v[lo] : NULL;
}

int k8s_store_replace_kind(struct k8s_store *s, const char *kind, struct k8s_store *src)
{
	size_t lo, n, total;
	int found;

	lo = lower_bound(s, kind, "", "", &found);
	for (n = 0; lo + n < s->n && !strcmp(s->v[lo + n].kind, kind); n++)
		;
	total = s->n - n + src->n;
	struct k8s_object *v = malloc((total ? total : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = lo; i < lo + n; i++)
		object_clear(&s->v[i]);
	/* memcpy must not see a NULL pointer, even for zero bytes. */
	if (lo)
		memcpy(v, s->v, lo * sizeof(*v));
	if (src->n)
		memcpy(v + lo, src->v, src->n * sizeof(*v));
	if (s->n - lo - n)
		memcpy(v + lo + src->n, s->v + lo + n, (s->n - lo - n) * sizeof(*v));
	free(s->v);
	s->v = v;
	s->n = s->cap = total;
	/* src is sorted and (per contract) all of kind; keep order robust anyway. */
	if (s->n > 1)
		qsort(s->v, s->n, sizeof(*s->v), obj_cmp);
	free(src->v);
	src->v = NULL;
	src->n = src->cap = 0;
	return 0;
}

size_t k8s_store_count(const struct k8s_store *s)
{
	return s->n;
}
