/* reload_test.c - live configuration changes from the manifests folder:
 * edits (in place and by rename), broken files, added and removed files,
 * endpoint changes; open keep-alive connections survive. Indices 80-89. */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(reload, .init = h_setup, .fini = h_teardown, .timeout = 60);

static int port_a, port_b;

/* Backends "a" (port 1) and "b" (port 2), Ingress r.local / -> a. */
static int start(int idx)
{
	port_a = H_PORT(idx, 1);
	port_b = H_PORT(idx, 2);
	cr_assert_gt(h_echo("a", port_a), 0);
	cr_assert_gt(h_echo("b", port_b), 0);
	cr_assert_eq(h_write("m/00-class.yaml", "%s", h_yaml_class()), 0);
	cr_assert_eq(h_write("m/10-a.yaml", "%s", h_yaml_backend("demo", "a", port_a, true)), 0);
	cr_assert_eq(h_write("m/11-b.yaml", "%s", h_yaml_backend("demo", "b", port_b, true)), 0);
	cr_assert_eq(h_write("m/20-ing.yaml", "%s", h_yaml_ingress("demo", "r", "r.local", "/", "Prefix", "a")), 0);
	pid_t p = h_ringress_ready(H_PORT(idx, 0), H_PORT(idx, 9), NULL);
	cr_assert_gt(p, 0, "ringress not ready (%d); log:\n%s", p, h_log_tail("ringress", 2000));
	return H_PORT(idx, 0);
}

/* Service that answered host/target on a new connection, or the status. */
static const char *who(int port, const char *host, const char *target)
{
	static char out[4][32];
	static int k;
	char *o = out[k++ & 3];
	struct h_resp r;
	int e = h_get(&r, port, host, target);
	const char *svc = e == 0 ? h_echo_value(&r, "service") : NULL;
	if (e)
		snprintf(o, 32, "ERR%d", e);
	else if (r.status == 200 && svc)
		snprintf(o, 32, "%s", svc);
	else
		snprintf(o, 32, "%d", r.status);
	h_resp_free(&r);
	return o;
}

/* Polls until host/target answers want (5 s). Returns the ms it took, or -1. */
static long until(int port, const char *host, const char *target, const char *want)
{
	int64_t t0 = h_now_ms();
	for (int i = 0; i < 100; i++) {
		if (!strcmp(who(port, host, target), want))
			return (long)(h_now_ms() - t0);
		h_sleep_ms(50);
	}
	return -1;
}

static const char *who_on(struct h_conn *c, const char *host)
{
	static char out[32];
	if (h_conn_sendf(c, "GET /ka HTTP/1.1\r\nHost: %s\r\n\r\n", host))
		return "SENDERR";
	struct h_resp r;
	int e = h_conn_response(c, &r, false, 5000);
	const char *svc = e == 0 ? h_echo_value(&r, "service") : NULL;
	if (e)
		snprintf(out, sizeof(out), "ERR%d", e);
	else if (r.status == 200 && svc)
		snprintf(out, sizeof(out), "%s", svc);
	else
		snprintf(out, sizeof(out), "%d", r.status);
	h_resp_free(&r);
	return out;
}

Test(reload, edit_switches_route_keepalive_survives)
{
	int port = start(80);
	struct h_conn ka;
	cr_assert_eq(h_conn_open(&ka, port, 2000), 0);
	cr_assert_str_eq(who_on(&ka, "r.local"), "a");
	cr_assert_str_eq(who(port, "r.local", "/"), "a");

	/* In-place edit (truncate + write, as `echo > file` does). */
	cr_assert_eq(h_write("m/20-ing.yaml", "%s", h_yaml_ingress("demo", "r", "r.local", "/", "Prefix", "b")), 0);
	long ms = until(port, "r.local", "/", "b");
	cr_assert_geq(ms, 0, "in-place edit not applied within 5 s; log:\n%s", h_log_tail("ringress", 1500));
	cr_log_info("in-place edit applied after %ld ms", ms);

	/* The keep-alive connection opened before the change still works and
	 * its next request uses the new configuration. */
	const char *w = who_on(&ka, "r.local");
	cr_expect_str_eq(w, "b", "keep-alive connection after a reload: %s", w);

	/* Edit by rename (editors, kubectl-style tools, ConfigMap mounts). */
	cr_assert_eq(h_write_atomic("m/20-ing.yaml", "%s", h_yaml_ingress("demo", "r", "r.local", "/", "Prefix", "a")),
		     0);
	ms = until(port, "r.local", "/", "a");
	cr_expect_geq(ms, 0, "edit by rename not applied within 5 s");
	w = who_on(&ka, "r.local");
	cr_expect_str_eq(w, "a", "keep-alive connection after a second reload: %s", w);
	h_conn_close(&ka);
}

Test(reload, broken_yaml_keeps_last_good)
{
	int port = start(81);
	cr_assert_str_eq(who(port, "r.local", "/"), "a");
	/* Broken YAML. */
	cr_assert_eq(h_write("m/20-ing.yaml", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n"
					      "  name: r\n  namespace: demo\nspec: [unclosed\n  rules: {{{\n"),
		     0);
	h_sleep_ms(1500);
	for (int i = 0; i < 5; i++)
		cr_expect_str_eq(who(port, "r.local", "/"), "a", "broken YAML changed routing");
	cr_expect(h_wait_ready(H_PORT(81, 9), 500), "/readyz not 200 after a broken edit");
	/* While one file is broken, ringress keeps the whole last good
	 * configuration (generation-wide, not per file): nothing is asserted
	 * about other files' changes here. */
	/* Fixing the file applies it: the watcher survived the error. */
	cr_assert_eq(h_write("m/20-ing.yaml", "%s", h_yaml_ingress("demo", "r", "r.local", "/", "Prefix", "b")), 0);
	cr_expect_geq(until(port, "r.local", "/", "b"), 0, "fixed file not applied within 5 s");
	/* A file that is valid YAML but holds an unusable object (an Ingress
	 * without rules or backend): skipped, the rest still applies. */
	cr_assert_eq(h_write("m/21-odd.yaml", "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n"
					      "  name: odd\n  namespace: demo\nspec:\n  ingressClassName: ringress\n"
					      "---\n%s",
			     h_yaml_ingress("demo", "n", "n.local", "/", "Prefix", "a")),
		     0);
	cr_expect_geq(until(port, "n.local", "/", "a"), 0, "a valid Ingress next to an unusable one not applied");
	cr_expect_str_eq(who(port, "r.local", "/"), "b");
	cr_expect(h_wait_ready(H_PORT(81, 9), 500), "/readyz not 200");
}

Test(reload, add_remove_files_and_endpoints)
{
	int port = start(82);
	cr_assert_str_eq(who(port, "new.local", "/"), "404");
	/* A new file. */
	cr_assert_eq(h_write("m/30-new.yaml", "%s", h_yaml_ingress("demo", "new", "new.local", "/", "Prefix", "b")), 0);
	cr_expect_geq(until(port, "new.local", "/", "b"), 0, "added file not applied within 5 s");
	/* Removing it removes the route. */
	cr_assert_eq(h_remove("m/30-new.yaml"), 0);
	cr_expect_geq(until(port, "new.local", "/", "404"), 0, "removed file still routes after 5 s");
	cr_expect_str_eq(who(port, "r.local", "/"), "a");
	/* The EndpointSlice of a now points at b's port: same route, new pod. */
	char *moved = h_yaml_backend("demo", "a", port_b, true);
	cr_assert_eq(h_write("m/10-a.yaml", "%s", moved), 0);
	free(moved);
	cr_expect_geq(until(port, "r.local", "/", "b"), 0, "endpoint change not applied within 5 s");
	/* Not ready: 503. */
	char *down = h_yaml_backend("demo", "a", port_b, false);
	cr_assert_eq(h_write("m/10-a.yaml", "%s", down), 0);
	free(down);
	cr_expect_geq(until(port, "r.local", "/", "503"), 0, "endpoint not-ready not applied within 5 s");
}

Test(reload, rapid_edits_settle_on_last)
{
	int port = start(83);
	/* 20 edits in quick succession: the final state must win. */
	for (int i = 0; i < 20; i++) {
		const char *svc = i % 2 ? "a" : "b";
		cr_assert_eq(h_write("m/20-ing.yaml", "%s", h_yaml_ingress("demo", "r", "r.local", "/", "Prefix", svc)), 0);
		h_sleep_ms(20);
	}
	/* Last write (i = 19) was "a"; then switch to b once more and check. */
	cr_assert_eq(h_write("m/20-ing.yaml", "%s", h_yaml_ingress("demo", "r", "r.local", "/", "Prefix", "b")), 0);
	cr_expect_geq(until(port, "r.local", "/", "b"), 0, "final edit not applied");
	h_sleep_ms(1000);
	for (int i = 0; i < 5; i++)
		cr_expect_str_eq(who(port, "r.local", "/"), "b", "routing flaps after edits settled");
}

/* A few allocations of the control thread fail (tests/support/failmalloc.c,
 * 3 in 1000) while the Ingress is edited 20 times: a reload that meets a
 * failure is rejected whole with its reason logged, the last good
 * configuration answers every request meanwhile, and the first edit after
 * the failures stop applies. */
Test(reload, out_of_memory_keeps_last_good)
{
	cr_assert_eq(h_failmalloc_preload("control", 3), 0, "RINGRESS_FAILMALLOC (libfailmalloc.so) not set: run through zig build test");
	int port = start(84);
	h_failmalloc_spawned();
	cr_assert_eq(h_failmalloc_on(true), 0);
	for (int i = 0; i < 20; i++) {
		const char *svc = i % 2 ? "a" : "b";
		cr_assert_eq(h_write_atomic("m/20-ing.yaml", "%s",
					    h_yaml_ingress("demo", "r", "r.local", "/", "Prefix", svc)),
			     0);
		for (int k = 0; k < 5; k++) {
			const char *got = who(port, "r.local", "/");
			cr_assert(!strcmp(got, "a") || !strcmp(got, "b"), "edit %d: r.local answered %s; log:\n%s",
				  i, got, h_log_tail("ringress", 3000));
			h_sleep_ms(50);
		}
	}
	cr_assert_eq(h_failmalloc_on(false), 0);
	const char *log = h_log_tail("ringress", 1 << 20);
	cr_expect(strstr(log, "keeping last good configuration (generation") &&
			  strstr(log, "Cannot allocate memory"),
		  "no reload met a failure, or its reason was not logged:\n%s", h_log_tail("ringress", 3000));
	cr_assert_eq(h_write_atomic("m/20-ing.yaml", "%s---\n%s",
				    h_yaml_ingress("demo", "r", "r.local", "/", "Prefix", "a"),
				    h_yaml_ingress("demo", "f", "final.local", "/", "Prefix", "b")),
		     0);
	cr_expect_geq(until(port, "final.local", "/", "b"), 0, "the edit after the failures did not apply");
	cr_expect_str_eq(who(port, "r.local", "/"), "a");
}
