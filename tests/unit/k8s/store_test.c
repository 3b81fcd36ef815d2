/* store_test.c - the object store. */
#include "k8s/store.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static cJSON *obj(const char *name)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", name);
	return o;
}

static const char *name_of(const struct k8s_object *o)
{
	return cJSON_GetObjectItem(o->obj, "name")->valuestring;
}

Test(store, upsert_get_replace_delete)
{
	struct k8s_store *s = k8s_store_new();

	cr_assert_eq(k8s_store_upsert(s, "Service", "b", "web", obj("v1"), "f.yaml", 3), 0);
	cr_assert_eq(k8s_store_upsert(s, "Service", "a", "web", obj("other-ns"), NULL, 0), 0);
	cr_assert_eq(k8s_store_upsert(s, "Service", "b", "web", obj("v2"), "g.yaml", 7), 1);
	cr_assert_eq(k8s_store_count(s), 2);

	const struct k8s_object *o = k8s_store_get(s, "Service", "b", "web");
	cr_assert_not_null(o);
	cr_assert_str_eq(name_of(o), "v2");
	cr_assert_str_eq(o->source, "g.yaml");
	cr_assert_eq(o->line, 7);
	cr_assert_null(k8s_store_get(s, "Ingress", "b", "web"));

	cr_assert_eq(k8s_store_delete(s, "Service", "b", "web"), 0);
	cr_assert_eq(k8s_store_delete(s, "Service", "b", "web"), -ENOENT);
	cr_assert_null(k8s_store_get(s, "Service", "b", "web"));
	cr_assert_eq(k8s_store_count(s), 1);
	k8s_store_free(s);
}

Test(store, invalid_key_frees_object)
{
	struct k8s_store *s = k8s_store_new();
	cr_assert_eq(k8s_store_upsert(s, "Service", "ns", "", obj("x"), NULL, 0), -EINVAL);
	cr_assert_eq(k8s_store_upsert(s, "", "ns", "n", obj("x"), NULL, 0), -EINVAL);
	cr_assert_eq(k8s_store_count(s), 0);
	k8s_store_free(s);
}

Test(store, list_by_kind_sorted)
{
	struct k8s_store *s = k8s_store_new();
	size_t n;

	k8s_store_upsert(s, "Service", "ns2", "a", obj("ns2/a"), NULL, 0);
	k8s_store_upsert(s, "Ingress", "ns1", "x", obj("ing"), NULL, 0);
	k8s_store_upsert(s, "Service", "ns1", "b", obj("ns1/b"), NULL, 0);
	k8s_store_upsert(s, "Service", "ns1", "a", obj("ns1/a"), NULL, 0);
	k8s_store_upsert(s, "IngressClass", NULL, "c", obj("class"), NULL, 0);

	const struct k8s_object *v = k8s_store_list(s, "Service", &n);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(name_of(&v[0]), "ns1/a");
	cr_assert_str_eq(name_of(&v[1]), "ns1/b");
	cr_assert_str_eq(name_of(&v[2]), "ns2/a");
	v = k8s_store_list(s, "Ingress", &n);
	cr_assert_eq(n, 1);
	v = k8s_store_list(s, "IngressClass", &n);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0].ns, "");
	cr_assert_null(k8s_store_list(s, "EndpointSlice", &n));
	cr_assert_eq(n, 0);
	k8s_store_free(s);
}

Test(store, replace_kind_for_relist)
{
	struct k8s_store *s = k8s_store_new(), *src = k8s_store_new();
	size_t n;

	k8s_store_upsert(s, "Service", "ns", "old1", obj("old1"), NULL, 0);
	k8s_store_upsert(s, "Service", "ns", "old2", obj("old2"), NULL, 0);
	k8s_store_upsert(s, "Ingress", "ns", "keep", obj("keep"), NULL, 0);
	k8s_store_upsert(s, "Secret", "ns", "keep", obj("keep"), NULL, 0);
	k8s_store_upsert(src, "Service", "ns", "new", obj("new"), NULL, 0);
	k8s_store_upsert(src, "Service", "ns", "old2", obj("old2-v2"), NULL, 0);

	cr_assert_eq(k8s_store_replace_kind(s, "Service", src), 0);
	cr_assert_eq(k8s_store_count(src), 0);
	const struct k8s_object *v = k8s_store_list(s, "Service", &n);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(name_of(&v[0]), "new");
	cr_assert_str_eq(name_of(&v[1]), "old2-v2");
	cr_assert_not_null(k8s_store_get(s, "Ingress", "ns", "keep"));
	cr_assert_not_null(k8s_store_get(s, "Secret", "ns", "keep"));
	cr_assert_eq(k8s_store_count(s), 4);

	/* Replacing with an empty set removes the kind. */
	cr_assert_eq(k8s_store_replace_kind(s, "Service", src), 0);
	cr_assert_null(k8s_store_list(s, "Service", &n));
	cr_assert_eq(k8s_store_count(s), 2);
	k8s_store_free(src);
	k8s_store_free(s);
}

Test(store, many_objects)
{
	struct k8s_store *s = k8s_store_new();
	char name[32];
	size_t n;

	for (int i = 999; i >= 0; i--) {
		snprintf(name, sizeof(name), "svc-%04d", i);
		cr_assert_eq(k8s_store_upsert(s, "Service", "ns", name, obj(name), NULL, 0), 0);
	}
	const struct k8s_object *v = k8s_store_list(s, "Service", &n);
	cr_assert_eq(n, 1000);
	for (size_t i = 1; i < n; i++)
		cr_assert_lt(strcmp(v[i - 1].name, v[i].name), 0);
	cr_assert_not_null(k8s_store_get(s, "Service", "ns", "svc-0500"));
	k8s_store_free(s);
}
