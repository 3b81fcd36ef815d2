/* status_test.c - Ingress status addresses (sorting, sources, comparison),
 * class selection shared with the translation, MicroTime format. */
#include "k8s/ingclass.h"
#include "k8s/leader.h"
#include "k8s/status.h"
#include "k8s_test.h"

static char *print(const cJSON *j)
{
	static char buf[512];
	char *s = cJSON_PrintUnformatted(j);
	cr_assert_not_null(s);
	snprintf(buf, sizeof(buf), "%s", s);
	free(s);
	return buf;
}

Test(status, addresses_from_list_sorted_and_unique)
{
	cJSON *a = k8s_status_from_list(" 10.0.0.2,lb.example.com, 10.0.0.1 ,10.0.0.2,,fd00::1 ");
	cr_assert_str_eq(print(a), "[{\"ip\":\"10.0.0.1\"},{\"ip\":\"10.0.0.2\"},{\"ip\":\"fd00::1\"},"
				   "{\"hostname\":\"lb.example.com\"}]");
	cJSON_Delete(a);
	a = k8s_status_from_list("");
	cr_assert_str_eq(print(a), "[]");
	cJSON_Delete(a);
}

Test(status, addresses_from_service)
{
	cJSON *svc = cJSON_Parse("{\"spec\":{\"externalIPs\":[\"192.0.2.9\"]},\"status\":{"
				 "\"loadBalancer\":{\"ingress\":[{\"hostname\":\"b.example\"},{\"ip\":"
				 "\"203.0.113.5\",\"ports\":[{\"port\":80}]},{}]}}}");
	cJSON *a = k8s_status_from_service(svc);
	cr_assert_str_eq(print(a), "[{\"ip\":\"203.0.113.5\"},{\"hostname\":\"b.example\"}]");
	cJSON_Delete(a);
	cJSON_Delete(svc);

	/* No load-balancer status: external IPs. */
	svc = cJSON_Parse("{\"spec\":{\"externalIPs\":[\"192.0.2.9\",\"192.0.2.1\",7]}}");
	a = k8s_status_from_service(svc);
	cr_assert_str_eq(print(a), "[{\"ip\":\"192.0.2.1\"},{\"ip\":\"192.0.2.9\"}]");
	cJSON_Delete(a);
	cJSON_Delete(svc);

	/* Hostile shapes give an empty list, never a crash. */
	const char *bad[] = {"{}", "[]", "{\"status\":{\"loadBalancer\":{\"ingress\":\"x\"}}}",
			     "{\"spec\":{\"externalIPs\":{}}}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		svc = cJSON_Parse(bad[i]);
		a = k8s_status_from_service(svc);
		cr_assert_str_eq(print(a), "[]", "%s", bad[i]);
		cJSON_Delete(a);
		cJSON_Delete(svc);
	}
}

Test(status, equality_with_the_current_status)
{
	cJSON *want = k8s_status_from_list("10.0.0.1,lb.example");
	cJSON *empty = k8s_status_from_list("");
	cJSON *ing = cJSON_Parse("{\"status\":{\"loadBalancer\":{\"ingress\":[{\"ip\":\"10.0.0.1\","
				 "\"ports\":[]},{\"hostname\":\"lb.example\"}]}}}");
	cr_assert(k8s_status_equal(ing, want));
	cr_assert_not(k8s_status_equal(ing, empty));
	cJSON_Delete(ing);

	ing = cJSON_Parse("{\"status\":{\"loadBalancer\":{\"ingress\":[{\"hostname\":"
			  "\"lb.example\"},{\"ip\":\"10.0.0.1\"}]}}}");
	cr_assert_not(k8s_status_equal(ing, want)); /* order matters: we write sorted */
	cJSON_Delete(ing);

	ing = cJSON_Parse("{\"status\":{\"loadBalancer\":{\"ingress\":[{\"hostname\":"
			  "\"10.0.0.1\"},{\"hostname\":\"lb.example\"}]}}}");
	cr_assert_not(k8s_status_equal(ing, want)); /* ip vs hostname */
	cJSON_Delete(ing);

	const char *none[] = {"{}", "{\"status\":{}}", "{\"status\":{\"loadBalancer\":{}}}",
			      "{\"status\":{\"loadBalancer\":{\"ingress\":[]}}}"};
	for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
		ing = cJSON_Parse(none[i]);
		cr_assert(k8s_status_equal(ing, empty), "%s", none[i]);
		cr_assert_not(k8s_status_equal(ing, want), "%s", none[i]);
		cJSON_Delete(ing);
	}
	cJSON_Delete(want);
	cJSON_Delete(empty);
}

/* ingclass.c must agree with translate.c on every fixture Ingress. */
static void agree(const char *extra, bool without_class)
{
	struct k8s_store *st = k8s_store_new();
	struct k8s_class_options o = {.ingress_class = K8S_TEST_CLASS,
				      .controller_class = K8S_TEST_CONTROLLER,
				      .watch_without_class = without_class};
	struct k8s_translate_stats ts;
	size_t n;
	unsigned ours = 0;

	load_fixture(st, "translate/classes.yaml");
	if (extra)
		load_fixture(st, extra);
	struct snapshot *s = build(st, without_class, &ts);
	const struct k8s_object *ing = k8s_store_list(st, "Ingress", &n);
	bool dflt = k8s_have_default_class(st, &o);
	for (size_t i = 0; i < n; i++) {
		char host[300];
		const cJSON *rules = cJSON_GetObjectItem(cJSON_GetObjectItem(ing[i].obj, "spec"),
							 "rules");
		const cJSON *h = cJSON_GetObjectItem(cJSON_GetArrayItem(rules, 0), "host");
		bool mine = k8s_ingress_is_ours(st, &o, ing[i].obj, dflt);
		ours += mine;
		snprintf(host, sizeof(host), "%s", cJSON_IsString(h) ? h->valuestring : "");
		cr_assert_eq(mine, route(s, host, "/") != NULL, "%s/%s", ing[i].ns, ing[i].name);
	}
	cr_assert_eq(ours, ts.ingresses);
	snapshot_release(s);
	k8s_store_free(st);
}

Test(status, class_selection_agrees_with_translate)
{
	quiet_logs();
	agree(NULL, false);
	agree(NULL, true);
	agree("translate/default-class.yaml", false);
	agree("translate/other-default-class.yaml", false);
}

Test(status, microtime)
{
	struct timespec t = {.tv_sec = 1714557600, .tv_nsec = 123456789};
	char buf[40];
	cr_assert_str_eq(k8s_microtime(&t, buf, sizeof(buf)), "2024-05-01T10:00:00.123456Z");
}
