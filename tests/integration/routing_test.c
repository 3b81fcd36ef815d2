/* routing_test.c - host and path routing, wildcard hosts, 404 / 503, the
 * admin endpoints, IngressClass selection. Test indices 0-19. */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

TestSuite(routing, .init = h_setup, .fini = h_teardown, .timeout = 40);

/* Routes one GET and returns "web"/"api" (the service that answered), or
 * "404", "503"... for a response not from a backend, "ERR" on failure. The
 * backend's view of the target is stored in *seen_target when not NULL. */
static const char *route(int port, const char *host, const char *target, char *seen_target)
{
	static char out[8][64];
	static int k;
	char *o = out[k++ & 7];
	struct h_resp r;
	int e = h_get(&r, port, host, target);
	if (e) {
		snprintf(o, 64, "ERR%d", e);
		h_resp_free(&r);
		return o;
	}
	const char *svc = h_echo_value(&r, "service");
	if (r.status == 200 && svc)
		snprintf(o, 64, "%s", svc);
	else
		snprintf(o, 64, "%d", r.status);
	if (seen_target) {
		const char *t = h_echo_value(&r, "target");
		snprintf(seen_target, 256, "%s", t ? t : "");
	}
	h_resp_free(&r);
	return o;
}

static void two_backends(int idx)
{
	cr_assert_gt(h_echo("web", H_PORT(idx, 1)), 0, "echo web did not start");
	cr_assert_gt(h_echo("api", H_PORT(idx, 2)), 0, "echo api did not start");
	cr_assert_eq(h_write("m/00-class.yaml", "%s", h_yaml_class()), 0);
	cr_assert_eq(h_write("m/10-web.yaml", "%s", h_yaml_backend("demo", "web", H_PORT(idx, 1), true)), 0);
	cr_assert_eq(h_write("m/11-api.yaml", "%s", h_yaml_backend("demo", "api", H_PORT(idx, 2), true)), 0);
}

static void start(int idx, const char *extra)
{
	pid_t p = extra ? h_ringress_ready(H_PORT(idx, 0), H_PORT(idx, 9), extra, NULL)
			: h_ringress_ready(H_PORT(idx, 0), H_PORT(idx, 9), NULL);
	cr_assert_gt(p, 0, "ringress not ready within 5 s (%d); log:\n%s", p, h_log_tail("ringress", 2000));
}

#define ING_HEAD(name)                                                                             \
	"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: " name                \
	"\n  namespace: demo\nspec:\n  ingressClassName: ringress\n  rules:\n"
#define PATH(p, type, svc)                                                                         \
	"          - path: " p "\n            pathType: " type "\n            backend:\n"          \
	"              service:\n                name: " svc "\n                port:\n"           \
	"                  number: 80\n"

#define EXPECT_ROUTE(port, host, target, want)                                                     \
	do {                                                                                       \
		const char *got_ = route(port, host, target, NULL);                                \
		cr_expect_str_eq(got_, want, "GET %s Host: %s -> %s, expected %s", target,         \
				 host ? host : "(none)", got_, want);                              \
	} while (0)

Test(routing, host_and_prefix_paths)
{
	enum { I = 0 };
	two_backends(I);
	cr_assert_eq(h_write("m/20-ing.yaml",
			     ING_HEAD("web") "    - host: web.demo.local\n      http:\n        paths:\n" PATH(
				     "/", "Prefix", "web") "---\n" ING_HEAD("api")
				     "    - host: api.demo.local\n      http:\n        paths:\n" PATH(
					     "/v1", "Prefix", "api") PATH("/", "Prefix", "web")),
		     0);
	start(I, NULL);
	int p = H_PORT(I, 0);
	char seen[256];

	cr_expect_str_eq(route(p, "web.demo.local", "/anything?x=1", seen), "web");
	cr_expect_str_eq(seen, "/anything?x=1", "the target must reach the backend unchanged");
	cr_expect_str_eq(route(p, "api.demo.local", "/v1/users?id=7", seen), "api");
	cr_expect_str_eq(seen, "/v1/users?id=7");
	EXPECT_ROUTE(p, "api.demo.local", "/v1", "api");
	EXPECT_ROUTE(p, "api.demo.local", "/v1/", "api");
	EXPECT_ROUTE(p, "api.demo.local", "/v10", "web"); /* Prefix matches whole path elements */
	EXPECT_ROUTE(p, "api.demo.local", "/about", "web");
	EXPECT_ROUTE(p, "api.demo.local:8080", "/v1/x", "api"); /* port in Host ignored */
	EXPECT_ROUTE(p, "API.Demo.LOCAL", "/v1/x", "api");      /* hosts are case-insensitive */
	EXPECT_ROUTE(p, "unknown.demo.local", "/", "404");
	EXPECT_ROUTE(p, "demo.local", "/v1", "404");
}

Test(routing, exact_and_longest_prefix)
{
	enum { I = 1 };
	two_backends(I);
	cr_assert_eq(h_write("m/20-ing.yaml",
			     ING_HEAD("x") "    - host: x.local\n      http:\n        paths:\n" PATH(
				     "/a", "Prefix", "web") PATH("/a/b", "Prefix", "api")
				     PATH("/exact", "Exact", "api") PATH("/foo/", "Prefix", "api")),
		     0);
	start(I, NULL);
	int p = H_PORT(I, 0);
	EXPECT_ROUTE(p, "x.local", "/a", "web");
	EXPECT_ROUTE(p, "x.local", "/a/", "web");
	EXPECT_ROUTE(p, "x.local", "/a/x", "web");
	EXPECT_ROUTE(p, "x.local", "/a/b", "api");    /* longest prefix wins */
	EXPECT_ROUTE(p, "x.local", "/a/b/c", "api");
	EXPECT_ROUTE(p, "x.local", "/a/bc", "web");   /* /a/b does not match /a/bc */
	EXPECT_ROUTE(p, "x.local", "/a/b?q=1", "api"); /* query is not part of the path */
	EXPECT_ROUTE(p, "x.local", "/exact", "api");
	EXPECT_ROUTE(p, "x.local", "/exact?x", "api");
	EXPECT_ROUTE(p, "x.local", "/exact/", "404"); /* Exact means exact */
	EXPECT_ROUTE(p, "x.local", "/exactly", "404");
	EXPECT_ROUTE(p, "x.local", "/foo", "api");    /* trailing slash of a Prefix is ignored */
	EXPECT_ROUTE(p, "x.local", "/foo/bar", "api");
	EXPECT_ROUTE(p, "x.local", "/b", "404");
}

Test(routing, wildcard_host)
{
	enum { I = 2 };
	two_backends(I);
	cr_assert_eq(h_write("m/20-ing.yaml",
			     ING_HEAD("w") "    - host: \"*.apps.local\"\n      http:\n        paths:\n" PATH(
				     "/", "Prefix", "api") "    - host: exact.apps.local\n      http:\n"
							   "        paths:\n" PATH("/", "Prefix", "web")),
		     0);
	start(I, NULL);
	int p = H_PORT(I, 0);
	EXPECT_ROUTE(p, "foo.apps.local", "/", "api");
	EXPECT_ROUTE(p, "FOO.apps.local", "/x", "api");
	EXPECT_ROUTE(p, "exact.apps.local", "/", "web"); /* an exact host beats a wildcard */
	EXPECT_ROUTE(p, "a.b.apps.local", "/", "404");   /* * covers exactly one label */
	EXPECT_ROUTE(p, "apps.local", "/", "404");
	EXPECT_ROUTE(p, "xapps.local", "/", "404");
}

Test(routing, rule_without_host)
{
	enum { I = 3 };
	two_backends(I);
	cr_assert_eq(h_write("m/20-ing.yaml",
			     ING_HEAD("any") "    - http:\n        paths:\n" PATH("/", "Prefix", "web")
				     "---\n" ING_HEAD("h") "    - host: api.local\n      http:\n        paths:\n"
					     PATH("/", "Prefix", "api")),
		     0);
	start(I, NULL);
	int p = H_PORT(I, 0);
	EXPECT_ROUTE(p, "whatever.example", "/x", "web");
	EXPECT_ROUTE(p, "127.0.0.1", "/", "web");
	EXPECT_ROUTE(p, "api.local", "/x", "api"); /* a rule for the host beats the host-less one */
	/* HTTP/1.0 without Host is valid and uses the host-less rules. */
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, p, 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET /ten HTTP/1.0\r\n\r\n"), 0);
	struct h_resp r;
	int e = h_conn_response(&c, &r, false, 5000);
	cr_expect_eq(e, 0, "HTTP/1.0 without Host: no response (%d)", e);
	cr_expect_eq(r.status, 200, "HTTP/1.0 without Host: status %d", r.status);
	const char *svc = h_echo_value(&r, "service");
	cr_expect(svc && !strcmp(svc, "web"), "HTTP/1.0 without Host went to %s", svc ? svc : "(none)");
	h_resp_free(&r);
	h_conn_close(&c);
}

Test(routing, no_ready_endpoints_503)
{
	enum { I = 4 };
	two_backends(I);
	cr_assert_eq(h_write("m/12-down.yaml", "%s", h_yaml_backend("demo", "down", H_PORT(I, 3), false)), 0);
	cr_assert_eq(h_write("m/20-ing.yaml",
			     ING_HEAD("x") "    - host: x.local\n      http:\n        paths:\n" PATH(
				     "/down", "Prefix", "down") PATH("/missing", "Prefix", "nosuchsvc")
				     PATH("/", "Prefix", "web")),
		     0);
	start(I, NULL);
	int p = H_PORT(I, 0);
	EXPECT_ROUTE(p, "x.local", "/", "web");
	EXPECT_ROUTE(p, "x.local", "/down", "503");     /* endpoints exist but none ready */
	EXPECT_ROUTE(p, "x.local", "/missing/x", "503"); /* Service does not exist */
	struct h_resp r;
	cr_assert_eq(h_get(&r, p, "x.local", "/down"), 0);
	cr_expect_not_null(h_header(&r, "Server"), "ringress's own 503 has no Server header");
	cr_expect(h_header(&r, "Content-Length") || h_header(&r, "Transfer-Encoding"),
		  "a 503 without framing");
	h_resp_free(&r);
}

Test(routing, admin_endpoints)
{
	enum { I = 5 };
	two_backends(I);
	cr_assert_eq(h_write("m/20-ing.yaml", "%s", h_yaml_ingress("demo", "x", "x.local", "/", "Prefix", "web")),
		     0);
	start(I, NULL);
	struct h_resp r;
	cr_assert_eq(h_curl(&r, "http://127.0.0.1:20059/healthz", NULL), 0);
	cr_expect_eq(r.status, 200, "/healthz: %d", r.status);
	h_resp_free(&r);
	cr_assert_eq(h_curl(&r, "http://127.0.0.1:20059/readyz", NULL), 0);
	cr_expect_eq(r.status, 200, "/readyz: %d", r.status);
	h_resp_free(&r);
	cr_assert_eq(h_curl(&r, "http://127.0.0.1:20059/nope", NULL), 0);
	cr_expect_eq(r.status, 404, "admin /nope: %d", r.status);
	h_resp_free(&r);
	/* The admin port is not a proxy port. */
	cr_assert_eq(h_curl(&r, "-H", "Host: x.local", "http://127.0.0.1:20059/", NULL), 0);
	cr_expect_neq(r.status, 200, "admin port proxied a request");
	h_resp_free(&r);
	/* The proxy port does not serve admin paths for a routed host... */
	cr_assert_eq(h_curl(&r, "-H", "Host: x.local", "http://127.0.0.1:20050/healthz", NULL), 0);
	cr_expect_eq(r.status, 200);
	cr_expect(h_echo_value(&r, "service") != NULL, "/healthz on the proxy port not proxied");
	h_resp_free(&r);
}

Test(routing, version_help_and_bad_flag)
{
	/* --version and --help exit 0 and print something. */
	const char *bin = getenv("RINGRESS_BIN");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "'%s' --version >/dev/null 2>&1", bin ? bin : "zig-out/bin/ringress");
	int st = system(cmd);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--version exit status %d", st);
	snprintf(cmd, sizeof(cmd), "'%s' --help 2>&1 | grep -q -- --manifests", bin ? bin : "zig-out/bin/ringress");
	st = system(cmd);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--help does not list --manifests");
	snprintf(cmd, sizeof(cmd), "'%s' --no-such-flag >/dev/null 2>&1", bin ? bin : "zig-out/bin/ringress");
	st = system(cmd);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) != 0, "an unknown flag must fail");
}

Test(routing, ingress_class_selection)
{
	enum { I = 7 };
	two_backends(I);
	cr_assert_eq(h_write("m/20-ing.yaml",
			     "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: other\n"
			     "  namespace: demo\nspec:\n  ingressClassName: nginx\n  rules:\n"
			     "    - host: other.local\n      http:\n        paths:\n" PATH("/", "Prefix", "web")
			     "---\n"
			     "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: noclass\n"
			     "  namespace: demo\nspec:\n  rules:\n"
			     "    - host: noclass.local\n      http:\n        paths:\n" PATH("/", "Prefix", "api")
			     "---\n" ING_HEAD("mine") "    - host: mine.local\n      http:\n        paths:\n"
			     PATH("/", "Prefix", "web")),
		     0);
	start(I, "--watch-ingress-without-class");
	int p = H_PORT(I, 0);
	EXPECT_ROUTE(p, "mine.local", "/", "web");
	EXPECT_ROUTE(p, "other.local", "/", "404");  /* another controller's class */
	EXPECT_ROUTE(p, "noclass.local", "/", "api"); /* --watch-ingress-without-class */
}

Test(routing, nonstandard_host_and_absolute_form)
{
	enum { I = 8 };
	two_backends(I);
	cr_assert_eq(h_write("m/20-ing.yaml", "%s", h_yaml_ingress("demo", "x", "x.local", "/", "Prefix", "api")),
		     0);
	start(I, NULL);
	int p = H_PORT(I, 0);
	EXPECT_ROUTE(p, "x.local.", "/", "api"); /* trailing dot of an FQDN */
	/* absolute-form target: the authority wins over Host (RFC 9112 3.2.2). */
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, p, 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET http://x.local/abs?q HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n"),
		     0);
	struct h_resp r;
	cr_assert_eq(h_conn_response(&c, &r, false, 5000), 0);
	cr_expect_eq(r.status, 200, "absolute-form: %d", r.status);
	const char *t = h_echo_value(&r, "target");
	cr_expect(t && !strcmp(t, "/abs?q"), "absolute-form target forwarded as %s", t ? t : "(none)");
	h_resp_free(&r);
	h_conn_close(&c);
}
