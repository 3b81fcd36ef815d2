/* k8s_api_test.c - ringress against the test Kubernetes API server
 * (tests/support/kube-apiserver.py) and real echo backends: list + watch,
 * relists, restarts of the API server, authentication, Ingress status and
 * leader election. Ports 30000-34999 (K_PORT), test indices 0-19. */
#include "k8s_support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

TestSuite(k8s_api, .init = h_setup, .fini = h_teardown, .timeout = 90);

#define HTTP(idx) K_PORT(idx, 2)
#define ADMIN(idx) K_PORT(idx, 3)
#define HTTP2(idx) K_PORT(idx, 4)
#define ADMIN2(idx) K_PORT(idx, 5)
#define WEB(idx) K_PORT(idx, 10)
#define API(idx) K_PORT(idx, 11)

/* API server, two echo backends (web, api), the IngressClass, both
 * Services and their EndpointSlices in namespace demo. */
static void base(int idx)
{
	cr_assert_gt(k_api_start(idx), 0, "API server did not start:\n%s",
		     h_log_tail("kube-apiserver", 3000));
	cr_assert_gt(h_echo("web", WEB(idx)), 0);
	cr_assert_gt(h_echo("api", API(idx)), 0);
	char *items = k_items(k_json_class(), k_json_service("demo", "web", WEB(idx)),
			      k_json_slice("demo", "web", "a", WEB(idx), true),
			      k_json_service("demo", "api", API(idx)),
			      k_json_slice("demo", "api", "a", API(idx), true), NULL);
	k_apply(items);
	free(items);
}

static void apply1(char *json)
{
	k_apply(json);
	free(json);
}

static void ready(const char *name, int admin)
{
	cr_assert(h_wait_ready(admin, 15000), "%s not ready; log:\n%s", name,
		  h_log_tail(name, 4000));
}

static const char *kc(int idx)
{
	return k_kubeconfig(idx, "kubeconfig", "token");
}

/* Number of API requests whose method is method, whose path contains path
 * and whose user agent contains ua (NULL: any). */
static int count_requests(const char *method, const char *path, const char *ua)
{
	char *out, m[64];
	int n = 0;

	cr_assert_eq(k_ctl("GET", "/_test/requests", NULL, &out), 200);
	snprintf(m, sizeof(m), "\"method\": \"%s\"", method);
	for (char *p = out; (p = strstr(p, m)); p++) {
		char *end = strchr(p, '}');
		if (!end)
			break;
		*end = '\0';
		if (strstr(p, path) && (!ua || strstr(p, ua)))
			n++;
		*end = '}';
	}
	free(out);
	return n;
}

Test(k8s_api, routing_follows_objects)
{
	const int i = 0;
	base(i);
	apply1(k_json_ingress("demo", "site", "ringress", "site.test", "web"));
	k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--sync-period", "50ms",
		   "--update-status=false", NULL);
	ready("ringress", ADMIN(i));
	cr_assert_str_eq(k_route(HTTP(i), "site.test"), "web");

	/* Ingress updated: the backend changes. */
	apply1(k_json_ingress("demo", "site", "ringress", "site.test", "api"));
	cr_assert(k_wait_route(HTTP(i), "site.test", "api", 5000));

	/* Another Ingress appears. */
	apply1(k_json_ingress("demo", "second", "ringress", "second.test", "web"));
	cr_assert(k_wait_route(HTTP(i), "second.test", "web", 5000));

	/* EndpointSlice changes: web's only endpoint moves to the api backend. */
	apply1(k_json_slice("demo", "web", "a", API(i), true));
	cr_assert(k_wait_route(HTTP(i), "second.test", "api", 5000));
	/* ... becomes not ready: no endpoint left, 503. */
	apply1(k_json_slice("demo", "web", "a", WEB(i), false));
	cr_assert(k_wait_route(HTTP(i), "second.test", "503", 5000));
	apply1(k_json_slice("demo", "web", "a", WEB(i), true));
	cr_assert(k_wait_route(HTTP(i), "second.test", "web", 5000));
	/* ... is deleted. */
	k_delete("EndpointSlice", "demo", "web-a");
	cr_assert(k_wait_route(HTTP(i), "second.test", "503", 5000));
	apply1(k_json_slice("demo", "web", "b", WEB(i), true));
	cr_assert(k_wait_route(HTTP(i), "second.test", "web", 5000));

	/* Service deleted: 503; Ingress deleted: 404. */
	k_delete("Service", "demo", "web");
	cr_assert(k_wait_route(HTTP(i), "second.test", "503", 5000));
	k_delete("Ingress", "demo", "second");
	cr_assert(k_wait_route(HTTP(i), "second.test", "404", 5000));
	cr_assert_str_eq(k_route(HTTP(i), "site.test"), "api");
	cr_assert(k_wait_log("ringress", "watch Ingress: DELETED demo/second", 1000));
}

Test(k8s_api, class_filtering)
{
	const int i = 1;
	base(i);
	char *ann = strdup(
		"{\"kind\":\"Ingress\",\"metadata\":{\"name\":\"ann\",\"namespace\":\"demo\","
		"\"annotations\":{\"kubernetes.io/ingress.class\":\"ringress\"}},\"spec\":{\"rules\":"
		"[{\"host\":\"ann.test\",\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\","
		"\"backend\":{\"service\":{\"name\":\"web\",\"port\":{\"number\":80}}}}]}}]}}");
	char *items = k_items(k_json_ingress("demo", "ours", "ringress", "ours.test", "web"),
			      k_json_ingress("demo", "other", "nginx", "other.test", "web"),
			      k_json_ingress("demo", "none", NULL, "none.test", "web"), ann, NULL);
	k_apply(items);
	free(items);
	k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--sync-period", "50ms",
		   "--update-status=false", NULL);
	ready("ringress", ADMIN(i));
	cr_assert_str_eq(k_route(HTTP(i), "ours.test"), "web");
	cr_assert_str_eq(k_route(HTTP(i), "ann.test"), "web");
	cr_assert_str_eq(k_route(HTTP(i), "other.test"), "404");
	cr_assert_str_eq(k_route(HTTP(i), "none.test"), "404");

	/* Our IngressClass becomes the default: Ingresses without a class are ours. */
	apply1(strdup("{\"kind\":\"IngressClass\",\"metadata\":{\"name\":\"ringress\","
		      "\"annotations\":{\"ingressclass.kubernetes.io/is-default-class\":\"true\"}},"
		      "\"spec\":{\"controller\":\"ringress.io/ingress-controller\"}}"));
	cr_assert(k_wait_route(HTTP(i), "none.test", "web", 5000));
	cr_assert_str_eq(k_route(HTTP(i), "other.test"), "404");

	/* An Ingress moves to our class. */
	apply1(k_json_ingress("demo", "other", "ringress", "other.test", "api"));
	cr_assert(k_wait_route(HTTP(i), "other.test", "api", 5000));
}

Test(k8s_api, ready_only_after_every_first_list)
{
	const int i = 2;
	base(i);
	apply1(k_json_ingress("demo", "site", "ringress", "site.test", "web"));
	/* The first two EndpointSlice lists fail. */
	k_config("{\"fail\":[{\"method\":\"GET\",\"path_contains\":\"endpointslices?limit\","
		 "\"status\":500,\"count\":2}]}");
	k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--update-status=false", NULL);
	cr_assert(k_wait_log("ringress", "list EndpointSlice: HTTP 500", 5000));
	cr_assert_not(h_wait_ready(ADMIN(i), 200), "ready before the EndpointSlices were listed");
	ready("ringress", ADMIN(i));
	/* The first configuration served already has the endpoints. */
	cr_assert_str_eq(k_route(HTTP(i), "site.test"), "web");
	cr_assert(k_wait_log("ringress", "generation 1:", 100));
}

Test(k8s_api, token_file_rotation_and_client_certificate)
{
	const int i = 3;
	base(i);
	apply1(k_json_ingress("demo", "site", "ringress", "site.test", "web"));
	const char *kcf = k_kubeconfig(i, "kubeconfig", "tokenfile");
	k_ringress("ringress", kcf, HTTP(i), ADMIN(i), "--sync-period", "50ms",
		   "--update-status=false", NULL);
	ready("ringress", ADMIN(i));
	cr_assert_str_eq(k_route(HTTP(i), "site.test"), "web");

	/* The token rotates (server and file); the watches are cut and must
	 * come back with the new token, read again from the file. */
	cr_assert_eq(h_write("token.new", "test-token-2\n"), 0);
	char from[512], to[512];
	snprintf(from, sizeof(from), "%s/token.new", h_dir());
	snprintf(to, sizeof(to), "%s/token", h_dir());
	cr_assert_eq(rename(from, to), 0);
	k_config("{\"token\":\"test-token-2\"}");
	cr_assert_eq(k_ctl("POST", "/_test/drop-watches", "{}", NULL), 200);
	apply1(k_json_ingress("demo", "site", "ringress", "site.test", "api"));
	cr_assert(k_wait_route(HTTP(i), "site.test", "api", 15000), "log:\n%s",
		  h_log_tail("ringress", 3000));
	cr_assert(k_wait_log("ringress", "new token", 100));

	/* A second replica with a client certificate (no token). */
	const char *kcc = k_kubeconfig(i, "kubeconfig-cert", "cert");
	k_ringress("ringress-cert", kcc, HTTP2(i), ADMIN2(i), "--update-status=false", NULL);
	ready("ringress-cert", ADMIN2(i));
	cr_assert_str_eq(k_route(HTTP2(i), "site.test"), "api");
}

Test(k8s_api, apiserver_killed_and_restarted)
{
	const int i = 4;
	base(i);
	apply1(k_json_ingress("demo", "site", "ringress", "site.test", "web"));
	k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--sync-period", "50ms",
		   "--update-status=false", NULL);
	ready("ringress", ADMIN(i));
	cr_assert_str_eq(k_route(HTTP(i), "site.test"), "web");

	k_api_kill();
	/* Traffic keeps flowing on the last configuration. */
	for (int n = 0; n < 10; n++) {
		cr_assert_str_eq(k_route(HTTP(i), "site.test"), "web");
		h_sleep_ms(150);
	}
	cr_assert(k_wait_log("ringress", "retrying", 3000));
	cr_assert(h_wait_ready(ADMIN(i), 100), "no longer ready while the API server is down");

	/* The API server comes back (same objects); ringress catches up. */
	cr_assert_gt(k_api_start(i), 0);
	apply1(k_json_ingress("demo", "site", "ringress", "site.test", "api"));
	apply1(k_json_ingress("demo", "after", "ringress", "after.test", "web"));
	cr_assert(k_wait_route(HTTP(i), "site.test", "api", 20000), "log:\n%s",
		  h_log_tail("ringress", 3000));
	cr_assert(k_wait_route(HTTP(i), "after.test", "web", 5000));
}

Test(k8s_api, forced_410_relists)
{
	const int i = 5;
	base(i);
	apply1(k_json_ingress("demo", "a", "ringress", "a.test", "web"));
	k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--sync-period", "50ms",
		   "--update-status=false", NULL);
	ready("ringress", ADMIN(i));
	cr_assert_str_eq(k_route(HTTP(i), "a.test"), "web");

	/* Watches fail while objects change: ringress misses the events... */
	k_config("{\"fail\":[{\"path_contains\":\"watch=1\",\"status\":500,\"count\":100000}]}");
	cr_assert_eq(k_ctl("POST", "/_test/drop-watches", "{}", NULL), 200);
	k_delete("Ingress", "demo", "a");
	apply1(k_json_ingress("demo", "b", "ringress", "b.test", "api"));
	/* ... and the history is compacted: resuming gets 410, a relist fixes it. */
	cr_assert_eq(k_ctl("POST", "/_test/compact", "{}", NULL), 200);
	h_sleep_ms(300);
	k_config("{\"fail\":[]}");
	cr_assert(k_wait_route(HTTP(i), "b.test", "api", 20000), "log:\n%s",
		  h_log_tail("ringress", 3000));
	cr_assert(k_wait_route(HTTP(i), "a.test", "404", 2000));
	cr_assert(k_wait_log("ringress", "code 410", 100));
	cr_assert(k_wait_log("ringress", "(relist)", 100));

	/* The same with an HTTP 410 answer to the watch request. */
	k_config("{\"watch_http_410\":true}");
	cr_assert_eq(k_ctl("POST", "/_test/compact", "{\"drop\":true}", NULL), 200);
	apply1(k_json_ingress("demo", "c", "ringress", "c.test", "web"));
	cr_assert(k_wait_route(HTTP(i), "c.test", "web", 20000));
	cr_assert_str_eq(k_route(HTTP(i), "b.test"), "api");
}

Test(k8s_api, invalid_objects_and_events_skipped)
{
	const int i = 6;
	base(i);
	apply1(k_json_ingress("demo", "good", "ringress", "good.test", "web"));
	k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--sync-period", "50ms",
		   "--update-status=false", NULL);
	ready("ringress", ADMIN(i));
	int64_t deadline = h_now_ms() + 5000;
	while (k_watches() < 5 && h_now_ms() < deadline)
		h_sleep_ms(50);

	const char *raw[] = {
		"{not json\\n",
		"[1,2,3]\\n",
		"{\\\"type\\\":\\\"ADDED\\\",\\\"object\\\":{\\\"metadata\\\":{}}}\\n",
		"{\\\"type\\\":\\\"WHAT\\\",\\\"object\\\":{}}\\n",
		("{\\\"type\\\":\\\"MODIFIED\\\",\\\"object\\\":{\\\"metadata\\\":{\\\"name\\\":"
		 "\\\"x\\\"}}}\\n"), /* no namespace */
		"{\\\"type\\\":\\\"DELETED\\\"}\\n",
	};
	for (size_t k = 0; k < sizeof(raw) / sizeof(raw[0]); k++) {
		char body[512];
		snprintf(body, sizeof(body), "{\"plural\":\"ingresses\",\"raw\":\"%s\"}", raw[k]);
		cr_assert_eq(k_ctl("POST", "/_test/inject", body, NULL), 200);
	}
	/* An Ingress whose content is hostile is skipped by the translation. */
	apply1(strdup("{\"kind\":\"Ingress\",\"metadata\":{\"name\":\"bad\",\"namespace\":\"demo\"},"
		      "\"spec\":{\"ingressClassName\":\"ringress\",\"rules\":\"nope\","
		      "\"defaultBackend\":7}}"));
	apply1(k_json_ingress("demo", "new", "ringress", "new.test", "api"));
	cr_assert(k_wait_route(HTTP(i), "new.test", "api", 5000));
	cr_assert_str_eq(k_route(HTTP(i), "good.test"), "web");
	cr_assert(k_wait_log("ringress", "event skipped: invalid JSON", 1000));
	cr_assert(k_wait_log("ringress", "metadata.name missing", 100));
	cr_assert(k_wait_log("ringress", "unknown event type", 100));
	cr_assert(k_wait_log("ringress", "metadata.namespace missing", 100));
	cr_assert(k_wait_log("ringress", "DELETED event without an object", 100));
}

Test(k8s_api, status_for_our_class_only_and_removed_on_shutdown)
{
	const int i = 7;
	base(i);
	char *items = k_items(k_json_ingress("demo", "ours", "ringress", "ours.test", "web"),
			      k_json_ingress("demo", "other", "nginx", "other.test", "web"), NULL);
	k_apply(items);
	free(items);
	pid_t p = k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--publish-status-address",
			     "10.0.0.2,10.0.0.1", "--status-update-interval", "1s",
			     "--election-ttl", "4s", NULL);
	ready("ringress", ADMIN(i));
	cr_assert(k_wait_object("Ingress", "demo", "ours",
				"\"ingress\": [{\"ip\": \"10.0.0.1\"}, {\"ip\": \"10.0.0.2\"}]", false,
				10000),
		  "status not written; log:\n%s", h_log_tail("ringress", 3000));
	h_sleep_ms(1500); /* a round or two more */
	char *other = k_get("Ingress", "demo", "other");
	cr_assert_not_null(other);
	cr_assert_null(strstr(other, "10.0.0.1"), "other class got a status: %s", other);
	free(other);
	cr_assert_eq(count_requests("PATCH", "ingresses/other", NULL), 0);
	/* Written once: unchanged status is not written again. */
	cr_assert_eq(count_requests("PATCH", "ingresses/ours/status", NULL), 1);

	/* Someone changes it: ringress puts it back. */
	apply1(strdup("{\"kind\":\"Ingress\",\"metadata\":{\"name\":\"ours\",\"namespace\":\"demo\"},"
		      "\"spec\":{\"ingressClassName\":\"ringress\",\"rules\":[{\"host\":\"ours.test\","
		      "\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\",\"backend\":"
		      "{\"service\":{\"name\":\"web\",\"port\":{\"number\":80}}}}]}}]},\"status\":"
		      "{\"loadBalancer\":{\"ingress\":[{\"ip\":\"192.0.2.1\"}]}}}"));
	cr_assert(k_wait_object("Ingress", "demo", "ours", "10.0.0.1", false, 5000));

	/* Shutdown: the last instance removes it. */
	int st;
	h_signal(p, SIGTERM);
	cr_assert_eq(h_wait_exit(p, 15000, &st), 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert(k_wait_object("Ingress", "demo", "ours", "10.0.0.1", true, 100),
		  "status not removed on shutdown");
	char *lease = k_get("Lease", "default", "ingress-controller-leader");
	cr_assert_not_null(lease);
	cr_assert(strstr(lease, "\"holderIdentity\": \"\""), "lease not released: %s", lease);
	free(lease);

	/* --update-status-on-shutdown=false keeps it. */
	p = k_ringress("ringress2", kc(i), HTTP(i), ADMIN(i), "--publish-status-address",
		       "10.0.0.1", "--status-update-interval", "1s",
		       "--update-status-on-shutdown=false", NULL);
	ready("ringress2", ADMIN(i));
	cr_assert(k_wait_object("Ingress", "demo", "ours", "10.0.0.1", false, 10000));
	h_signal(p, SIGTERM);
	cr_assert_eq(h_wait_exit(p, 15000, &st), 0);
	cr_assert(k_wait_object("Ingress", "demo", "ours", "10.0.0.1", false, 100));
}

Test(k8s_api, status_from_publish_service)
{
	const int i = 8;
	base(i);
	apply1(k_json_ingress("demo", "ours", "ringress", "ours.test", "web"));
	const char *svc = "{\"kind\":\"Service\",\"metadata\":{\"name\":\"lb\",\"namespace\":"
			  "\"ingress\"},\"spec\":{\"type\":\"LoadBalancer\",\"ports\":[{\"port\":80}]},"
			  "\"status\":{\"loadBalancer\":{\"ingress\":[{\"%s\":\"%s\"}]}}}";
	char buf[512];
	snprintf(buf, sizeof(buf), svc, "ip", "203.0.113.7");
	k_apply(buf);
	k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--publish-service", "ingress/lb",
		   "--status-update-interval", "1s", "--watch-namespace", "demo", NULL);
	ready("ringress", ADMIN(i));
	cr_assert(k_wait_object("Ingress", "demo", "ours", "\"ip\": \"203.0.113.7\"", false, 10000),
		  "log:\n%s", h_log_tail("ringress", 3000));
	snprintf(buf, sizeof(buf), svc, "hostname", "lb.example.com");
	k_apply(buf);
	cr_assert(k_wait_object("Ingress", "demo", "ours", "\"hostname\": \"lb.example.com\"", false,
				10000));
	cr_assert(k_wait_object("Ingress", "demo", "ours", "203.0.113.7", true, 100));
}

static bool wait_holder(const char *id, int timeout_ms)
{
	char want[400];
	snprintf(want, sizeof(want), "\"holderIdentity\": \"%s\"", id);
	return k_wait_object("Lease", "default", "ingress-controller-leader", want, false,
			     timeout_ms);
}

Test(k8s_api, two_replicas_one_leader_and_failover)
{
	const int i = 9;
	char ida[300], idb[300];
	base(i);
	apply1(k_json_ingress("demo", "ours", "ringress", "ours.test", "web"));
	pid_t a = k_ringress("ringress-a", kc(i), HTTP(i), ADMIN(i), "--publish-status-address",
			     "10.0.0.1", "--status-update-interval", "1s", "--election-ttl", "2s",
			     NULL);
	snprintf(ida, sizeof(ida), "%s", k_identity(a));
	ready("ringress-a", ADMIN(i));
	cr_assert(wait_holder(ida, 5000), "A is not the leader");
	cr_assert(k_wait_object("Ingress", "demo", "ours", "10.0.0.1", false, 5000));

	pid_t b = k_ringress("ringress-b", kc(i), HTTP2(i), ADMIN2(i), "--publish-status-address",
			     "10.0.0.1", "--status-update-interval", "1s", "--election-ttl", "2s",
			     NULL);
	snprintf(idb, sizeof(idb), "%s", k_identity(b));
	ready("ringress-b", ADMIN2(i));
	/* Both serve traffic. */
	cr_assert_str_eq(k_route(HTTP(i), "ours.test"), "web");
	cr_assert_str_eq(k_route(HTTP2(i), "ours.test"), "web");

	/* The status is taken away: only the leader writes it back. */
	cr_assert_eq(k_ctl("POST", "/_test/requests/clear", "{}", NULL), 200);
	apply1(k_json_ingress("demo", "ours", "ringress", "ours.test", "web")); /* no status */
	cr_assert(k_wait_object("Ingress", "demo", "ours", "10.0.0.1", false, 5000));
	h_sleep_ms(2500);
	cr_assert(wait_holder(ida, 100), "leadership moved without a reason");
	cr_assert_geq(count_requests("PATCH", "ingresses/ours/status", ida), 1);
	cr_assert_eq(count_requests("PATCH", "ingresses/ours/status", idb), 0);
	cr_assert_geq(count_requests("PUT", "leases/ingress-controller-leader", ida), 1);
	cr_assert_eq(count_requests("PUT", "leases/ingress-controller-leader", idb), 0,
		     "B wrote the lease while A held it");

	/* A dies without releasing: B takes over once the lease expires. */
	int st;
	h_signal(a, SIGKILL);
	h_wait_exit(a, 5000, &st);
	cr_assert(wait_holder(idb, 15000), "B did not take over; log:\n%s",
		  h_log_tail("ringress-b", 3000));
	cr_assert(k_wait_log("ringress-b", "became leader", 100));
	apply1(k_json_ingress("demo", "ours", "ringress", "ours.test", "api"));
	cr_assert(k_wait_object("Ingress", "demo", "ours", "10.0.0.1", false, 5000));
	cr_assert(k_wait_route(HTTP2(i), "ours.test", "api", 5000));
	cr_assert_geq(count_requests("PATCH", "ingresses/ours/status", idb), 1);

	/* B stops: it releases the lease at once. */
	h_signal(b, SIGTERM);
	cr_assert_eq(h_wait_exit(b, 15000, &st), 0);
	cr_assert(wait_holder("", 100), "lease not released");
}

Test(k8s_api, watch_namespace_bookmarks_and_renewed_watches)
{
	const int i = 10;
	base(i);
	char *items = k_items(k_json_ingress("demo", "site", "ringress", "demo.test", "web"),
			      k_json_service("elsewhere", "web", WEB(i)),
			      k_json_slice("elsewhere", "web", "a", WEB(i), true),
			      k_json_ingress("elsewhere", "site", "ringress", "elsewhere.test", "web"),
			      NULL);
	k_apply(items);
	free(items);
	/* Short server-side watches and frequent bookmarks. */
	k_config("{\"max_watch_seconds\":1,\"bookmark_interval\":0.3,\"chunk_max\":7}");
	k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--sync-period", "50ms",
		   "--watch-namespace", "demo", "--update-status=false", "--configmap",
		   "ringress/settings", NULL);
	ready("ringress", ADMIN(i));
	cr_assert_str_eq(k_route(HTTP(i), "demo.test"), "web");
	/* The ConfigMap is watched by name in its own namespace. */
	cr_assert_geq(count_requests("GET",
				     "/api/v1/namespaces/ringress/configmaps?limit=500&fieldSelector="
				     "metadata.name%3Dsettings",
				     NULL),
		      1);
	cr_assert_geq(count_requests("GET", "/api/v1/namespaces/demo/secrets?limit=500&"
					    "fieldSelector=type%3Dkubernetes.io%2Ftls",
				     NULL),
		      1);
	cr_assert_str_eq(k_route(HTTP(i), "elsewhere.test"), "404");
	h_sleep_ms(2500); /* several watch renewals */
	cr_assert(k_wait_log("ringress", "stream ended after", 100));
	apply1(k_json_ingress("demo", "site", "ringress", "demo.test", "api"));
	apply1(k_json_ingress("elsewhere", "site", "ringress", "elsewhere.test", "api"));
	cr_assert(k_wait_route(HTTP(i), "demo.test", "api", 5000));
	cr_assert_str_eq(k_route(HTTP(i), "elsewhere.test"), "404");
	/* Only namespaced paths were requested. */
	cr_assert_eq(count_requests("GET", "/api/v1/services?", NULL), 0);
	cr_assert_geq(count_requests("GET", "/api/v1/namespaces/demo/services?", NULL), 1);
}

Test(k8s_api, apiserver_down_at_start)
{
	const int i = 11;
	cr_assert_gt(h_echo("web", WEB(i)), 0);
	/* The CA must exist for the kubeconfig: make it with a first start. */
	cr_assert_gt(k_api_start(i), 0);
	k_api_kill();
	k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--update-status=false", NULL);
	cr_assert(k_wait_log("ringress", "retrying", 5000));
	cr_assert_not(h_wait_ready(ADMIN(i), 500), "ready without an API server");

	cr_assert_gt(k_api_start(i), 0);
	char *items = k_items(k_json_class(), k_json_service("demo", "web", WEB(i)),
			      k_json_slice("demo", "web", "a", WEB(i), true),
			      k_json_ingress("demo", "site", "ringress", "site.test", "web"), NULL);
	k_apply(items);
	free(items);
	ready("ringress", ADMIN(i));
	cr_assert(k_wait_route(HTTP(i), "site.test", "web", 5000));
}

Test(k8s_api, in_cluster_service_account)
{
	const int i = 12;
	char port[16], sa[512];
	base(i);
	apply1(k_json_ingress("demo", "site", "ringress", "site.test", "web"));
	/* A service-account directory like the one kubelet mounts. */
	snprintf(sa, sizeof(sa), "%s/sa", h_dir());
	cr_assert_eq(mkdir(sa, 0700), 0);
	cr_assert_eq(h_write("sa/token", "%s\n", K_TOKEN), 0);
	cr_assert_eq(h_write("sa/namespace", "ingress-system\n"), 0);
	char ca[1200];
	snprintf(ca, sizeof(ca), "cp '%s/tls/ca.crt' '%s/ca.crt'", h_dir(), sa);
	cr_assert_eq(system(ca), 0);
	snprintf(port, sizeof(port), "%d", K_PORT(i, 0));
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", port, 1);
	char hp[16], ap[16];
	snprintf(hp, sizeof(hp), "%d", HTTP(i));
	snprintf(ap, sizeof(ap), "%d", ADMIN(i));
	const char *bin = getenv("RINGRESS_BIN");
	char *argv[] = {(char *)(bin ? bin : "zig-out/bin/ringress"), "--serviceaccount-dir", sa,
			"--bind", "127.0.0.1", "--http-port", hp, "--admin-port", ap, "--shards", "1",
			"--https-port", "0",
			"--publish-status-address", "10.1.2.3", NULL};
	cr_assert_gt(h_spawn("ringress", argv), 0);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	ready("ringress", ADMIN(i));
	cr_assert_str_eq(k_route(HTTP(i), "site.test"), "web");
	cr_assert(k_wait_log("ringress", "in-cluster service account", 100));
	/* The Lease lives in the pod's namespace (from the namespace file). */
	cr_assert(k_wait_object("Lease", "ingress-system", "ingress-controller-leader",
				"holderIdentity", false, 5000));
	cr_assert(k_wait_object("Ingress", "demo", "site", "10.1.2.3", false, 5000));
}

/* Runs ringress with argv (NULL-terminated, after the binary) and returns
 * its exit status, or -1 if it did not exit within 5 s. */
static int exit_status(const char *name, const char *a1, const char *a2, const char *a3,
		       const char *a4)
{
	const char *bin = getenv("RINGRESS_BIN");
	char *argv[] = {(char *)(bin ? bin : "zig-out/bin/ringress"), (char *)a1, (char *)a2,
			(char *)a3, (char *)a4, NULL};
	int st;
	pid_t p = h_spawn(name, argv);
	cr_assert_gt(p, 0);
	if (h_wait_exit(p, 5000, &st))
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(k8s_api, source_flags)
{
	const char *kcf;
	unsetenv("KUBERNETES_SERVICE_HOST");
	cr_assert_gt(k_api_start(13), 0);
	kcf = kc(13);
	cr_assert_eq(exit_status("none", "--http-port", "30262", NULL, NULL), 2);
	cr_assert(k_wait_log("none", "no configuration source", 100));
	cr_assert_eq(exit_status("both", "--manifests", h_manifests(), "--kubeconfig", kcf), 2);
	cr_assert(k_wait_log("both", "alternatives", 100));
	cr_assert_eq(exit_status("ctx", "--kube-context", "x", NULL, NULL), 2);
	cr_assert_eq(exit_status("missing", "--kubeconfig", "/nonexistent/kubeconfig", NULL, NULL), 2);
	cr_assert_eq(exit_status("cm", "--kubeconfig", kcf, "--configmap", "noslash"), 2);
	/* A kubeconfig that names an unknown context: exit 1 with the reason. */
	cr_assert_eq(exit_status("badctx", "--kubeconfig", kcf, "--kube-context", "nope"), 1);
	cr_assert(k_wait_log("badctx", "context \"nope\" not found", 100));
}

static char *pod(const char *name, const char *app, const char *hash, const char *phase,
		 const char *ip)
{
	char *s;
	cr_assert_geq(asprintf(&s,
			       "{\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"namespace\":"
			       "\"ringress\",\"labels\":{\"app\":\"%s\",\"controller-revision-hash\":"
			       "\"%s\"}},\"spec\":{},\"status\":{\"phase\":\"%s\",\"hostIP\":\"%s\"}}",
			       name, app, hash, phase, ip),
		      0);
	return s;
}

Test(k8s_api, status_from_pod_nodes_and_last_instance)
{
	const int i = 14;
	int st;
	base(i);
	char *items = k_items(k_json_ingress("demo", "ours", "ringress", "ours.test", "web"),
			      pod("rg-a", "ringress", "1", "Running", "192.0.2.10"),
			      pod("rg-b", "ringress", "2", "Running", "192.0.2.11"),
			      pod("rg-c", "ringress", "2", "Pending", "192.0.2.12"),
			      pod("other", "other", "1", "Running", "192.0.2.99"), NULL);
	k_apply(items);
	free(items);
	/* The downward API of daemonset.yaml. */
	setenv("POD_NAME", "rg-a", 1);
	setenv("POD_NAMESPACE", "ringress", 1);
	pid_t p = k_ringress("ringress", kc(i), HTTP(i), ADMIN(i), "--status-update-interval", "1s",
			     NULL);
	unsetenv("POD_NAME");
	unsetenv("POD_NAMESPACE");
	ready("ringress", ADMIN(i));
	/* The Running pods with our labels (rollout hash aside): their nodes. */
	cr_assert(k_wait_object("Ingress", "demo", "ours",
				"[{\"ip\": \"192.0.2.10\"}, {\"ip\": \"192.0.2.11\"}]", false, 10000),
		  "log:\n%s", h_log_tail("ringress", 3000));
	cr_assert(k_wait_object("Lease", "ringress", "ingress-controller-leader",
				"\"holderIdentity\": \"rg-a\"", false, 100));

	/* Another instance runs: the status stays on shutdown. */
	h_signal(p, SIGTERM);
	cr_assert_eq(h_wait_exit(p, 15000, &st), 0);
	cr_assert(k_wait_log("ringress", "other ringress pods running: status kept", 100));
	cr_assert(k_wait_object("Ingress", "demo", "ours", "192.0.2.11", false, 100));

	/* The last instance removes it. */
	k_delete("Pod", "ringress", "rg-b");
	setenv("POD_NAME", "rg-a", 1);
	setenv("POD_NAMESPACE", "ringress", 1);
	p = k_ringress("ringress2", kc(i), HTTP(i), ADMIN(i), "--status-update-interval", "1s",
		       NULL);
	unsetenv("POD_NAME");
	unsetenv("POD_NAMESPACE");
	ready("ringress2", ADMIN(i));
	cr_assert(k_wait_object("Ingress", "demo", "ours", "192.0.2.11", true, 10000));
	cr_assert(k_wait_object("Ingress", "demo", "ours", "192.0.2.10", false, 10000));
	h_signal(p, SIGTERM);
	cr_assert_eq(h_wait_exit(p, 15000, &st), 0);
	cr_assert(k_wait_object("Ingress", "demo", "ours", "192.0.2.10", true, 100),
		  "status not removed by the last instance");
}
