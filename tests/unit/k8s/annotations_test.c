/* annotations_test.c - nginx.ingress.kubernetes.io annotations to backend options. */
#include "k8s/annotations.h"

#include <criterion/criterion.h>
#include <string.h>

static cJSON *anns(const char *json)
{
	cJSON *j = cJSON_Parse(json);
	cr_assert_not_null(j, "bad test JSON %s", json);
	return j;
}

Test(annotations, load_balance_and_timeouts)
{
	struct snap_backend_opts o;
	cJSON *a = anns("{\"nginx.ingress.kubernetes.io/load-balance\":\"ewma\","
			"\"nginx.ingress.kubernetes.io/proxy-read-timeout\":\"5\","
			"\"nginx.ingress.kubernetes.io/proxy-connect-timeout\":\"500ms\","
			"\"nginx.ingress.kubernetes.io/proxy-send-timeout\":\"2m\","
			"\"other.io/x\":\"y\"}");
	cr_expect_eq(k8s_annotations_backend_opts(a, "ns", "ing", &o), 4);
	cr_expect_eq(o.lb, SNAP_LB_EWMA);
	cr_expect_eq(o.read_timeout_ms, 5000);
	cr_expect_eq(o.connect_timeout_ms, 500);
	cr_expect_eq(o.send_timeout_ms, 120000);
	char suf[160];
	k8s_annotations_suffix(&o, suf, sizeof(suf));
	cr_expect_str_eq(suf, "|lb=2|ct=500|rt=5000|st=120000");
	cJSON_Delete(a);
}

Test(annotations, hash_by_forms)
{
	struct snap_backend_opts o;
	cJSON *a = anns("{\"nginx.ingress.kubernetes.io/upstream-hash-by\":\"$http_x_user_id\"}");
	cr_expect_eq(k8s_annotations_backend_opts(a, "ns", "ing", &o), 1);
	cr_expect_eq(o.lb, SNAP_LB_HASH);
	cr_expect_eq(o.hash_src, SNAP_HASH_HEADER);
	cr_expect_str_eq(o.hash_key, "x-user-id");
	cJSON_Delete(a);

	a = anns("{\"nginx.ingress.kubernetes.io/upstream-hash-by\":\"$cookie_session\","
		 "\"nginx.ingress.kubernetes.io/load-balance\":\"round_robin\"}");
	k8s_annotations_backend_opts(a, "ns", "ing", &o);
	cr_expect_eq(o.lb, SNAP_LB_HASH, "hashing wins over load-balance");
	cr_expect_eq(o.hash_src, SNAP_HASH_COOKIE);
	cr_expect_str_eq(o.hash_key, "session");
	cJSON_Delete(a);

	a = anns("{\"nginx.ingress.kubernetes.io/upstream-hash-by\":\"$remote_addr\"}");
	k8s_annotations_backend_opts(a, "ns", "ing", &o);
	cr_expect_eq(o.hash_src, SNAP_HASH_REMOTE_ADDR);
	cJSON_Delete(a);
}

Test(annotations, invalid_values_ignored)
{
	struct snap_backend_opts o;
	cJSON *a = anns("{\"nginx.ingress.kubernetes.io/load-balance\":\"fastest\","
			"\"nginx.ingress.kubernetes.io/upstream-hash-by\":\"$host$uri\","
			"\"nginx.ingress.kubernetes.io/proxy-read-timeout\":\"soon\","
			"\"nginx.ingress.kubernetes.io/proxy-send-timeout\":7}");
	cr_expect_eq(k8s_annotations_backend_opts(a, "ns", "ing", &o), 0);
	cr_expect_eq(o.lb, 0);
	cr_expect_eq(o.read_timeout_ms, 0);
	cr_expect_eq(o.send_timeout_ms, 0);
	char suf[160];
	k8s_annotations_suffix(&o, suf, sizeof(suf));
	cr_expect_str_eq(suf, "");
	cJSON_Delete(a);
	cr_expect_eq(k8s_annotations_backend_opts(NULL, "ns", "ing", &o), 0);
}
