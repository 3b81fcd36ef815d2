/* translate_test.c - objects to snapshot, checked through the real router. */
#include "k8s_test.h"

TestSuite(translate, .init = quiet_logs);

static bool served(const struct snapshot *s, const char *host)
{
	return route(s, host, "/") != NULL;
}

Test(translate, class_filtering)
{
	struct k8s_store *st = k8s_store_new();
	struct k8s_translate_stats ts;

	load_fixture(st, "translate/classes.yaml");
	struct snapshot *s = build(st, false, &ts);
	cr_assert(served(s, "field-ours.test"));     /* IngressClass with our controller */
	cr_assert(served(s, "field-flag.test"));     /* ingressClassName == --ingress-class */
	cr_assert(served(s, "ann-ours.test"));       /* legacy annotation */
	cr_assert_not(served(s, "field-other.test")); /* other controller's class */
	cr_assert_not(served(s, "field-unknown.test"));
	cr_assert_not(served(s, "ann-other.test"));
	cr_assert_not(served(s, "no-class.test")); /* no default class of ours */
	cr_assert_eq(ts.ingresses, 3);
	cr_assert_eq(ts.ignored, 4);
	/* Unknown host: no default backend -> 404. */
	cr_assert_null(route(s, "elsewhere.test", "/"));
	snapshot_release(s);
	k8s_store_free(st);
}

Test(translate, watch_without_class)
{
	struct k8s_store *st = k8s_store_new();

	load_fixture(st, "translate/classes.yaml");
	struct snapshot *s = build(st, true, NULL);
	cr_assert(served(s, "no-class.test"));
	cr_assert_not(served(s, "field-other.test"));
	cr_assert_not(served(s, "ann-other.test"));
	snapshot_release(s);
	k8s_store_free(st);
}

Test(translate, default_ingress_class_of_ours)
{
	struct k8s_store *st = k8s_store_new();

	load_fixture(st, "translate/classes.yaml");
	load_fixture(st, "translate/default-class.yaml");
	struct snapshot *s = build(st, false, NULL);
	cr_assert(served(s, "no-class.test"));
	cr_assert_not(served(s, "field-other.test")); /* an explicit class still rules */
	cr_assert_not(served(s, "ann-other.test"));
	snapshot_release(s);
	k8s_store_free(st);
}

Test(translate, default_ingress_class_of_another_controller)
{
	struct k8s_store *st = k8s_store_new();

	load_fixture(st, "translate/classes.yaml");
	load_fixture(st, "translate/other-default-class.yaml");
	struct snapshot *s = build(st, false, NULL);
	cr_assert_not(served(s, "no-class.test"));
	cr_assert(served(s, "field-ours.test"));
	snapshot_release(s);
	k8s_store_free(st);
}

Test(translate, service_port_target_port_slice_port)
{
	struct k8s_store *st = k8s_store_new();
	struct k8s_translate_stats ts;

	load_fixture(st, "translate/backends.yaml");
	struct snapshot *s = build(st, false, &ts);

	/* Port by number 80 -> port name "http" -> slice port 8080; IPv4 and IPv6
	 * slices; not-ready endpoint out; FQDN slice and other namespace ignored. */
	const struct snap_backend *b = route(s, "b.test", "/num/x");
	cr_assert_not_null(b);
	cr_assert_str_eq(b->name, "app/multi:80");
	cr_assert_eq(b->nendpoints, 3, "%u endpoints", b->nendpoints);
	cr_assert(has_endpoint(b, "10.0.1.1:8080"));
	cr_assert(has_endpoint(b, "10.0.1.3:8080")); /* no conditions = ready */
	cr_assert(has_endpoint(b, "[fd00::1]:8080"));
	cr_assert_not(has_endpoint(b, "10.0.1.2:8080")); /* ready: false */
	cr_assert_not(has_endpoint(b, "10.9.9.9:8080"));

	/* Port by name "admin" with a named targetPort -> slice port 9090. */
	b = route(s, "b.test", "/named");
	cr_assert_not_null(b);
	cr_assert_str_eq(b->name, "app/multi:admin");
	cr_assert_eq(b->nendpoints, 2);
	cr_assert(has_endpoint(b, "10.0.1.1:9090"));
	cr_assert(has_endpoint(b, "10.0.1.3:9090"));
	/* Exact: a sub-path does not match (404, no default backend). */
	cr_assert_null(route(s, "b.test", "/named/sub"));

	/* Unnamed single port: slice port without name. ImplementationSpecific = Prefix. */
	b = route(s, "b.test", "/single/a/b");
	cr_assert_not_null(b);
	cr_assert_str_eq(b->name, "app/single:80");
	cr_assert_eq(b->nendpoints, 2);
	cr_assert(has_endpoint(b, "10.0.2.1:3000"));
	cr_assert(has_endpoint(b, "10.0.2.2:3000"));
	snapshot_release(s);
	k8s_store_free(st);
}

Test(translate, missing_service_or_port_gives_empty_backend)
{
	struct k8s_store *st = k8s_store_new();
	struct k8s_translate_stats ts;

	load_fixture(st, "translate/backends.yaml");
	struct snapshot *s = build(st, false, &ts);
	const struct snap_backend *b = route(s, "b.test", "/missing");
	cr_assert_not_null(b); /* routed, 503 at run time */
	cr_assert_str_eq(b->name, "app/nothere:80");
	cr_assert_eq(b->nendpoints, 0);
	b = route(s, "b.test", "/badport");
	cr_assert_not_null(b);
	cr_assert_str_eq(b->name, "app/multi:99");
	cr_assert_eq(b->nendpoints, 0);
	cr_assert_eq(ts.unresolved, 2);
	snapshot_release(s);
	k8s_store_free(st);
}

Test(translate, invalid_paths_skipped)
{
	struct k8s_store *st = k8s_store_new();
	struct k8s_translate_stats ts;

	load_fixture(st, "translate/backends.yaml");
	struct snapshot *s = build(st, false, &ts);
	cr_assert_null(route(s, "b.test", "/badtype"));
	cr_assert_null(route(s, "b.test", "/relative"));
	cr_assert_null(route(s, "b.test", "/resource"));
	cr_assert_null(route(s, "b.test", "/noport"));
	/* badtype, relative, resource, noport, path 42, host list, "not a rule" */
	cr_assert_eq(ts.skipped, 7, "skipped %u", ts.skipped);
	cr_assert_eq(ts.routes, 5, "routes %u", ts.routes);
	snapshot_release(s);
	k8s_store_free(st);
}

Test(translate, oldest_ingress_wins_and_default_backend)
{
	struct k8s_store *st = k8s_store_new();
	struct k8s_translate_stats ts;

	load_fixture(st, "translate/conflicts.yaml");
	struct snapshot *s = build(st, false, &ts);

	cr_assert_str_eq(route_name(s, "c.test", "/app/deeper"), "default/old:80");
	cr_assert_str_eq(route_name(s, "c.test", "/app/"), "default/old:80");
	/* The Exact rule of the Ingress without timestamp does not conflict with
	 * the Prefix ones, and Exact beats Prefix on an exact hit. */
	cr_assert_str_eq(route_name(s, "c.test", "/app"), "default/nots:80");
	cr_assert_str_eq(route_name(s, "c.test", "/new"), "default/new:80");
	cr_assert_eq(ts.conflicts, 2, "conflicts %u", ts.conflicts);
	/* Other paths of c.test: "/" of the oldest Ingress's defaultBackend. */
	cr_assert_str_eq(route_name(s, "c.test", "/other"), "default/old-default:80");
	/* A host only the newer Ingress has: its own defaultBackend. */
	cr_assert_str_eq(route_name(s, "new-only.test", "/x"), "default/new:80");
	cr_assert_str_eq(route_name(s, "new-only.test", "/y"), "default/new-default:80");
	/* Unknown host: the catch-all is the oldest defaultBackend. */
	cr_assert_str_eq(route_name(s, "unknown.test", "/"), "default/old-default:80");
	cr_assert_not_null(s->default_backend);
	snapshot_release(s);
	k8s_store_free(st);
}

Test(translate, full_directory)
{
	struct k8s_store *st = k8s_store_new();

	load_fixture(st, "manifests/app");
	struct snapshot *s = build(st, false, NULL);
	const struct snap_backend *b = route(s, "WEB.example.com:8443", "/anything");
	cr_assert_not_null(b);
	cr_assert_str_eq(b->name, "shop/web:80");
	cr_assert_eq(b->nendpoints, 1);
	cr_assert(has_endpoint(b, "10.0.0.1:8080"));
	b = route(s, "api.example.com", "/v1/users?x=1");
	cr_assert_not_null(b);
	cr_assert_str_eq(b->name, "default/api:8000");
	cr_assert(has_endpoint(b, "10.0.1.1:9000"));
	cr_assert(has_endpoint(b, "10.0.1.2:9000"));
	cr_assert_null(route(s, "api.example.com", "/v2"));
	snapshot_release(s);
	k8s_store_free(st);
}

Test(translate, empty_store_and_hostile_types)
{
	struct k8s_store *st = k8s_store_new();
	struct snapshot *s = build(st, true, NULL);
	cr_assert_null(route(s, "x", "/"));
	snapshot_release(s);

	/* Every field of the wrong type: must not crash, must skip. */
	const char *bad[] = {
		"{\"spec\": 5}",
		"{\"spec\": {\"rules\": {\"a\": 1}, \"defaultBackend\": []}}",
		"{\"spec\": {\"rules\": [{\"host\": \"h\", \"http\": {\"paths\": \"x\"}}]}}",
		"{\"spec\": {\"rules\": [{\"http\": {\"paths\": [{\"backend\": {\"service\": "
		"{\"name\": 1, \"port\": {\"number\": \"80\"}}}}]}}]}}",
		"{\"spec\": {\"rules\": [{\"http\": {\"paths\": [{\"backend\": {\"service\": "
		"{\"name\": \"s\", \"port\": {\"number\": 70000}}}}]}}]}}",
		"{\"metadata\": {\"annotations\": [1], \"creationTimestamp\": 3}, \"spec\": {}}",
	};
	char name[8];
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(name, sizeof(name), "bad%u", i);
		cJSON *o = cJSON_Parse(bad[i]);
		cr_assert_not_null(o, "%s", bad[i]);
		cr_assert_geq(k8s_store_upsert(st, "Ingress", "default", name, o, NULL, 0), 0);
	}
	cJSON *svc = cJSON_Parse("{\"spec\": {\"ports\": 3}}");
	k8s_store_upsert(st, "Service", "default", "s", svc, NULL, 0);
	cJSON *slice = cJSON_Parse("{\"metadata\": {\"labels\": {\"kubernetes.io/service-name\": "
				   "\"s\"}}, \"addressType\": \"IPv4\", \"endpoints\": [{"
				   "\"addresses\": [1, \"not-an-ip\"]}]}");
	k8s_store_upsert(st, "EndpointSlice", "default", "s-1", slice, NULL, 0);
	s = build(st, true, NULL);
	cr_assert_null(route(s, "h", "/"));
	snapshot_release(s);
	k8s_store_free(st);
}

Test(translate, endpoint_only_update)
{
	struct k8s_store *st = k8s_store_new();
	struct k8s_translate_stats ts;

	load_fixture(st, "translate/backends.yaml");
	struct snapshot *s = build(st, false, &ts);
	cr_assert_eq(route(s, "b.test", "/num/x")->nendpoints, 3);

	/* The IPv6 slice goes away and 10.0.1.2 becomes ready. */
	cr_assert_eq(k8s_store_delete(st, "EndpointSlice", "app", "multi-v6"), 0);
	cJSON *sl = cJSON_Parse(
		"{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\","
		"\"metadata\":{\"name\":\"multi-v4\",\"namespace\":\"app\",\"labels\":"
		"{\"kubernetes.io/service-name\":\"multi\"}},\"addressType\":\"IPv4\","
		"\"ports\":[{\"name\":\"http\",\"port\":8080},{\"name\":\"admin\",\"port\":9090}],"
		"\"endpoints\":[{\"addresses\":[\"10.0.1.1\"]},{\"addresses\":[\"10.0.1.2\"]}]}");
	cr_assert_not_null(sl);
	cr_assert_eq(k8s_store_upsert(st, "EndpointSlice", "app", "multi-v4", sl, NULL, 0), 1);

	/* Only the named Services are resolved again: another one changes
	 * nothing here. */
	const char *other[] = {"app/other"};
	struct snapshot_builder *b = k8s_translate_endpoints(st, s, other, 1, &ts);
	cr_assert_not_null(b);
	struct snapshot *same = snapshot_rebuild_endpoints(s, b, s->generation + 1);
	snapshot_builder_free(b);
	cr_assert_not_null(same);
	cr_expect_eq(route(same, "b.test", "/num/x")->nendpoints, 3);
	snapshot_release(same);

	const char *multi[] = {"app/multi"};
	b = k8s_translate_endpoints(st, s, multi, 1, &ts);
	cr_assert_not_null(b);
	struct snapshot *s2 = snapshot_rebuild_endpoints(s, b, s->generation + 1);
	snapshot_builder_free(b);
	cr_assert_not_null(s2);
	const struct snap_backend *be = route(s2, "b.test", "/num/x");
	cr_assert_not_null(be);
	cr_assert_str_eq(be->name, "app/multi:80");
	cr_expect_eq(be->nendpoints, 2, "%u endpoints", be->nendpoints);
	cr_expect(has_endpoint(be, "10.0.1.2:8080"));
	cr_expect_not(has_endpoint(be, "[fd00::1]:8080"));
	be = route(s2, "b.test", "/named");
	cr_assert_not_null(be);
	cr_expect(has_endpoint(be, "10.0.1.2:9090"));
	/* The same answer as a full translation. */
	struct snapshot *full = build(st, false, NULL);
	for (uint32_t i = 0; i < full->nbackends; i++) {
		cr_assert_str_eq(full->backends[i].name, s2->backends[i].name);
		cr_expect_eq(full->backends[i].nendpoints, s2->backends[i].nendpoints, "%s",
			     full->backends[i].name);
	}
	snapshot_release(full);
	snapshot_release(s);
	snapshot_release(s2);
	k8s_store_free(st);
}
