/* signal_test.c - graceful shutdown: SIGTERM / SIGINT under load and with
 * requests in flight, idle keep-alive connections, --shutdown-timeout.
 * Test indices 90-99. */
#include "harness.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

TestSuite(signal, .init = h_setup, .fini = h_teardown, .timeout = 40);

static pid_t start(int idx, const char *a1, const char *a2)
{
	cr_assert_gt(h_echo("web", H_PORT(idx, 1)), 0);
	cr_assert_eq(h_write("m/00-class.yaml", "%s", h_yaml_class()), 0);
	cr_assert_eq(h_write("m/10-web.yaml", "%s", h_yaml_backend("demo", "web", H_PORT(idx, 1), true)), 0);
	cr_assert_eq(h_write("m/20-ing.yaml", "%s", h_yaml_ingress("demo", "g", "g.local", "/", "Prefix", "web")), 0);
	pid_t p = h_ringress_ready(H_PORT(idx, 0), H_PORT(idx, 9), "--log-level", "info", a1, a2, NULL);
	cr_assert_gt(p, 0, "ringress not ready (%d); log:\n%s", p, h_log_tail("ringress", 2000));
	return p;
}

static void expect_clean_exit(pid_t p, int within_ms, const char *what)
{
	int st = 0;
	int64_t t0 = h_now_ms();
	int e = h_wait_exit(p, within_ms, &st);
	cr_expect_eq(e, 0, "%s: ringress still running %d ms after the signal; log:\n%s", what, within_ms,
		     h_log_tail("ringress", 1500));
	if (e == 0)
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: exit status %s %d", what,
			  WIFEXITED(st) ? "code" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	cr_log_info("%s: exited after %lld ms", what, (long long)(h_now_ms() - t0));
}

Test(signal, sigterm_under_wrk_load)
{
	pid_t p = start(90, "--shutdown-timeout", "5s");
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", H_PORT(90, 0));
	char *argv[] = {"/usr/bin/wrk", "-t1", "-c20", "-d3s", "-H", "Host: g.local", url, NULL};
	pid_t w = h_spawn("wrk", argv);
	cr_assert_gt(w, 0);
	h_sleep_ms(1000);
	cr_assert(h_alive(p), "ringress died under load; log:\n%s", h_log_tail("ringress", 1500));
	cr_assert_eq(h_signal(p, SIGTERM), 0);
	expect_clean_exit(p, 7000, "SIGTERM under load");
	int st;
	cr_expect_eq(h_wait_exit(w, 8000, &st), 0, "wrk did not finish");
	/* wrk saw successful requests before the signal. */
	const char *log = h_log_tail("wrk", 4000);
	cr_expect(strstr(log, "requests in") != NULL, "wrk output: %s", log);
	cr_expect(strstr(log, "Non-2xx") == NULL, "non-2xx responses under load: %s", log);
}

Test(signal, sigterm_lets_inflight_finish)
{
	pid_t p = start(91, "--shutdown-timeout", "10s");
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, H_PORT(91, 0), 2000), 0);
	/* A POST whose response comes 1.5 s later. */
	cr_assert_eq(h_conn_sendf(&c, "POST /_/sleep/1500 HTTP/1.1\r\nHost: g.local\r\nContent-Length: 3\r\n\r\nabc"), 0);
	h_sleep_ms(300);
	cr_assert_eq(h_signal(p, SIGTERM), 0);
	struct h_resp r;
	int e = h_conn_response(&c, &r, false, 5000);
	cr_expect_eq(e, 0, "in-flight request lost on SIGTERM (%d)", e);
	cr_expect_eq(r.status, 200, "in-flight request: %d", r.status);
	cr_expect_str_eq(h_echo_value(&r, "body-bytes") ? h_echo_value(&r, "body-bytes") : "", "3");
	const char *conn = h_header(&r, "Connection");
	cr_expect(conn && !strcasecmp(conn, "close"), "response during shutdown lacks Connection: close (%s)",
		  conn ? conn : "-");
	h_resp_free(&r);
	cr_expect_eq(h_conn_wait_closed(&c, 3000), 0, "connection left open during shutdown");
	h_conn_close(&c);
	expect_clean_exit(p, 3000, "after in-flight request");
}

Test(signal, sigterm_closes_idle_keepalive_at_once)
{
	pid_t p = start(92, NULL, NULL); /* default --shutdown-timeout 30s */
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, H_PORT(92, 0), 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET / HTTP/1.1\r\nHost: g.local\r\n\r\n"), 0);
	struct h_resp r;
	cr_assert_eq(h_conn_response(&c, &r, false, 5000), 0);
	h_resp_free(&r);
	/* The connection is idle now: shutdown must not wait 30 s for it. */
	cr_assert_eq(h_signal(p, SIGTERM), 0);
	expect_clean_exit(p, 3000, "SIGTERM with an idle keep-alive connection");
	cr_expect_eq(h_conn_wait_closed(&c, 1000), 0, "idle connection not closed");
	h_conn_close(&c);
}

Test(signal, sigint_exits_zero)
{
	pid_t p = start(93, NULL, NULL);
	struct h_resp r;
	cr_assert_eq(h_get(&r, H_PORT(93, 0), "g.local", "/"), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
	cr_assert_eq(h_signal(p, SIGINT), 0);
	expect_clean_exit(p, 3000, "SIGINT");
	/* The ports are released. */
	cr_expect(!h_wait_port(H_PORT(93, 0), 300), "HTTP port still accepting after exit");
}

Test(signal, shutdown_timeout_cuts_slow_requests)
{
	pid_t p = start(94, "--shutdown-timeout", "1s");
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, H_PORT(94, 0), 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET /_/sleep/8000 HTTP/1.1\r\nHost: g.local\r\n\r\n"), 0);
	h_sleep_ms(200);
	int64_t t0 = h_now_ms();
	cr_assert_eq(h_signal(p, SIGTERM), 0);
	expect_clean_exit(p, 4000, "SIGTERM with a request slower than --shutdown-timeout");
	int64_t dt = h_now_ms() - t0;
	cr_expect_geq(dt, 800, "exited after %lld ms, before --shutdown-timeout 1s", (long long)dt);
	cr_expect_eq(h_conn_wait_closed(&c, 1000), 0, "client connection not closed");
	h_conn_close(&c);
}

Test(signal, new_connections_refused_while_draining)
{
	pid_t p = start(95, "--shutdown-timeout", "5s");
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, H_PORT(95, 0), 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET /_/sleep/2000 HTTP/1.1\r\nHost: g.local\r\n\r\n"), 0);
	h_sleep_ms(200);
	cr_assert_eq(h_signal(p, SIGTERM), 0);
	h_sleep_ms(300);
	/* Draining: listeners are closed (a load balancer's health check or a
	 * new client goes elsewhere), the old request still completes. */
	struct h_conn n;
	int e = h_conn_open(&n, H_PORT(95, 0), 500);
	cr_expect_neq(e, 0, "new connection accepted while draining");
	if (!e)
		h_conn_close(&n);
	struct h_resp r;
	cr_expect_eq(h_conn_response(&c, &r, false, 5000), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
	h_conn_close(&c);
	expect_clean_exit(p, 3000, "draining");
}
