/* translate_endpoints_test.c - ready endpoints serve; serving+terminating
 * ones only when a backend has no ready endpoint. */
#include "k8s_test.h"

static void put(struct k8s_store *s, const char *kind, const char *name, const char *json)
{
	cJSON *o = cJSON_Parse(json);
	cr_assert_not_null(o, "%s", json);
	cr_assert_geq(k8s_store_upsert(s, kind, "default", name, o, NULL, 0), 0);
}

#define ING(svc)                                                                                   \
	"{\"metadata\":{\"name\":\"" svc "\"},\"spec\":{\"rules\":[{\"host\":\"" svc ".test\","     \
	"\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":{\"service\":"     \
	"{\"name\":\"" svc "\",\"port\":{\"number\":80}}}}]}}]}}"
#define SVC "{\"spec\":{\"ports\":[{\"port\":80}]}}"
#define EP(ip, ready, serving, term)                                                               \
	"{\"addresses\":[\"" ip "\"],\"conditions\":{\"ready\":" ready ",\"serving\":" serving      \
	",\"terminating\":" term "}}"
#define SLICE(svc, eps)                                                                            \
	"{\"metadata\":{\"labels\":{\"kubernetes.io/service-name\":\"" svc "\"}},"                   \
	"\"addressType\":\"IPv4\",\"ports\":[{\"port\":8080}],\"endpoints\":[" eps "]}"

Test(translate_endpoints, terminating_only_as_fallback)
{
	struct k8s_store *s = k8s_store_new();

	quiet_logs();
	/* mixed: one ready, one draining -> only the ready one. */
	put(s, "Ingress", "mixed", ING("mixed"));
	put(s, "Service", "mixed", SVC);
	put(s, "EndpointSlice", "mixed-a", SLICE("mixed", EP("10.0.0.1", "true", "true", "false")));
	put(s, "EndpointSlice", "mixed-b", SLICE("mixed", EP("10.0.0.2", "false", "true", "true")));
	/* draining: no ready endpoint -> the serving+terminating ones, not the others. */
	put(s, "Ingress", "draining", ING("draining"));
	put(s, "Service", "draining", SVC);
	put(s, "EndpointSlice", "draining-a",
	    SLICE("draining", EP("10.0.1.1", "false", "true", "true") "," EP(
				      "10.0.1.2", "false", "false", "true") "," EP("10.0.1.3", "false",
										   "false", "false")));
	/* gone: nothing serving -> no endpoints. */
	put(s, "Ingress", "gone", ING("gone"));
	put(s, "Service", "gone", SVC);
	put(s, "EndpointSlice", "gone-a", SLICE("gone", EP("10.0.2.1", "false", "false", "true")));

	struct snapshot *snap = build(s, true, NULL);
	const struct snap_backend *b = route(snap, "mixed.test", "/");
	cr_assert_eq(b->nendpoints, 1);
	cr_assert(has_endpoint(b, "10.0.0.1:8080"));
	b = route(snap, "draining.test", "/");
	cr_assert_eq(b->nendpoints, 1);
	cr_assert(has_endpoint(b, "10.0.1.1:8080"));
	b = route(snap, "gone.test", "/");
	cr_assert_eq(b->nendpoints, 0);
	snapshot_release(snap);
	k8s_store_free(s);
}
