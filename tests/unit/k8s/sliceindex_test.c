/* sliceindex_test.c - EndpointSlices by (namespace, Service). */
#include "k8s/sliceindex.h"
#include "k8s_test.h"

static void add(struct k8s_store *s, const char *ns, const char *name, const char *svc)
{
	char buf[512];
	if (svc)
		snprintf(buf, sizeof(buf),
			 "{\"metadata\":{\"labels\":{\"kubernetes.io/service-name\":\"%s\"}}}", svc);
	else
		snprintf(buf, sizeof(buf), "{\"metadata\":{\"labels\":{\"app\":\"x\"}}}");
	cr_assert_geq(k8s_store_upsert(s, "EndpointSlice", ns, name, cJSON_Parse(buf), NULL, 0), 0);
}

Test(sliceindex, find_by_namespace_and_service)
{
	struct k8s_store *s = k8s_store_new();
	size_t n;

	struct k8s_slice_index *ix = k8s_slice_index_new(s);
	cr_assert_not_null(ix);
	cr_assert_null(k8s_slice_index_find(ix, "a", "web", &n));
	cr_assert_eq(n, 0);
	k8s_slice_index_free(ix);

	add(s, "b", "web-2", "web");
	add(s, "a", "web-1", "web");
	add(s, "b", "web-1", "web");
	add(s, "b", "api-1", "api");
	add(s, "b", "nolabel", NULL);
	cr_assert_geq(k8s_store_upsert(s, "Service", "b", "web", cJSON_CreateObject(), NULL, 0), 0);
	ix = k8s_slice_index_new(s);

	const struct k8s_object *const *v = k8s_slice_index_find(ix, "b", "web", &n);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(v[0]->name, "web-1"); /* store order */
	cr_assert_str_eq(v[1]->name, "web-2");
	v = k8s_slice_index_find(ix, "a", "web", &n);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(v[0]->ns, "a");
	v = k8s_slice_index_find(ix, "b", "api", &n);
	cr_assert_eq(n, 1);
	cr_assert_null(k8s_slice_index_find(ix, "b", "nolabel", &n));
	cr_assert_null(k8s_slice_index_find(ix, "c", "web", &n));
	cr_assert_null(k8s_slice_index_find(ix, "", "", &n));
	k8s_slice_index_free(ix);
	k8s_slice_index_free(NULL);
	k8s_store_free(s);
}
