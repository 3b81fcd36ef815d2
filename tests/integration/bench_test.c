/* bench_test.c - the benchmark harnesses never rot: `bench/run.sh --quick`
 * (shortened to 1 s per proxy) runs ringress, HAProxy and nginx against the
 * nginx origin with wrk, and ringress-micro, and prints their tables;
 * `bench/ab.sh` runs one short round of two ringress settings, HAProxy and
 * nginx.
 * Only that the harnesses work is checked, never a figure: the machine is
 * shared. */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* The table row of `name` inside the section that starts with `section`. */
static const char *row(const char *out, const char *section, const char *name)
{
	const char *s = strstr(out, section);
	if (!s)
		return NULL;
	char want[64];
	snprintf(want, sizeof(want), "\n| %s |", name);
	const char *r = strstr(s, want);
	const char *next = strstr(s + strlen(section), "\n**");
	return r && (!next || r < next) ? r + 1 : NULL;
}

/* The index (0: the proxy's name) of the column headed `head` in the table
 * after `section`, or -1. */
static int col(const char *out, const char *section, const char *head)
{
	const char *s = strstr(out, section);
	const char *h = s ? strstr(s, "\n| proxy |") : NULL;
	if (!h)
		return -1;
	const char *end = strchr(h + 1, '\n');
	char want[64];
	snprintf(want, sizeof(want), "| %s |", head);
	const char *at = strstr(h, want);
	if (!at || (end && at > end))
		return -1;
	int i = -1;
	for (const char *p = h + 1; p <= at; p++)
		i += *p == '|';
	return i;
}

/* Column i (0: the name) of a Markdown table row, as a number. */
static double column(const char *r, int i)
{
	for (int k = 0; k <= i; k++) {
		r = strchr(r, '|');
		if (!r)
			return -1;
		r++;
	}
	return strtod(r, NULL);
}

/* Runs bench/<name> with args (NULL-terminated), asserting that it finished
 * within timeout_ms; stores its wait status and returns its output. */
static const char *spawn_script(const char *name, const char *const *args, int timeout_ms, int *st)
{
	const char *root = getenv("RINGRESS_ROOT");
	char script[1024];
	snprintf(script, sizeof(script), "%s/bench/%s", root && *root ? root : ".", name);
	char *argv[16] = {"/bin/bash", script};
	int n = 2;
	for (; *args && n < 15; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	pid_t pid = h_spawn(name, argv);
	cr_assert_gt(pid, 0);
	*st = 0;
	cr_assert_eq(h_wait_exit(pid, timeout_ms, st), 0, "bench/%s did not finish", name);
	return h_log_tail(name, 65536);
}

/* Runs bench/<name> as spawn_script does and returns its output, asserting
 * that it exited 0. */
static const char *run_script(const char *name, const char *const *args, int timeout_ms)
{
	int st;
	const char *out = spawn_script(name, args, timeout_ms, &st);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bench/%s failed:\n%s", name, out);
	return out;
}

Test(bench, quick_harness_runs, .init = h_setup, .fini = h_teardown, .timeout = 240)
{
	const char *out = run_script(
		"run.sh", (const char *[]){"--quick", "--duration", "1", "--cases", "small,small-cpu50,micro", NULL},
		200000);

	/* A row per proxy in the small case, with requests done and no errors. */
	int rps = col(out, "**small**", "req/s"), errs = col(out, "**small**", "errors");
	int cpu = col(out, "**small**", "CPU µs/request");
	int load = col(out, "**small**", "load-CPU µs/request");
	cr_assert(rps > 0 && errs > 0 && cpu > 0 && load > 0 && col(out, "**small**", "sleeps/request") > 0,
		  "columns missing in the small case's table:\n%s", out);
	const char *names[] = {"nginx-direct", "ringress", "haproxy", "nginx"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *r = row(out, "**small**", names[i]);
		cr_assert_not_null(r, "no %s row in the small case:\n%s", names[i], out);
		cr_expect_gt(column(r, rps), 100.0, "%s: req/s", names[i]);
		cr_expect_eq(column(r, errs), 0.0, "%s: errors", names[i]);
		/* CPU 1 (origin and wrk) was busy while the load ran. */
		cr_expect_gt(column(r, load), 0.0, "%s: load-CPU us/request", names[i]);
	}
	/* ringress's CPU per request was measured. */
	cr_expect_gt(column(row(out, "**small**", "ringress"), cpu), 0.0, "ringress: CPU us/request");

	/* small-cpu50: each proxy held to half a CPU while measured (a cgroup
	 * quota; the case is skipped, and says so, where none can be made). */
	if (!strstr(out, "no CPU quota: skipping small-cpu50")) {
		for (size_t i = 1; i < sizeof(names) / sizeof(names[0]); i++) {
			const char *r = row(out, "**small-cpu50**", names[i]);
			cr_assert_not_null(r, "no %s row in small-cpu50:\n%s", names[i], out);
			double busy = column(r, rps) * column(r, cpu) / 1e6;
			cr_expect(busy > 0.0 && busy < 0.65, "%s used %.2f of a CPU under a 50 %% quota", names[i],
				  busy);
		}
		cr_expect_null(row(out, "**small-cpu50**", "nginx-direct"), "no proxy, nothing to hold");
	}

	/* The targets, each with a verdict; the small case's requests/s with
	 * their ceiling (the origin without a proxy). */
	const char *t = strstr(out, "**targets**");
	cr_assert_not_null(t, "no targets section:\n%s", out);
	const char *targets[] = {"| small, 64 connections: req/s >= 1.15x haproxy's | ",
				 "| small, 64 connections: req/s >= 1.15x nginx's | ",
				 "| small: CPU per request <= 0.75x HAProxy's | ", "| small: p99 <= HAProxy's | ",
				 "| keep-alive small GETs and POSTs: syscalls per request < 0.5 | "};
	/* Syscalls come from strace (bootstrap.sh installs it); without it,
	 * or where ptrace is denied, the harness says so and leaves them out. */
	size_t nt = sizeof(targets) / sizeof(targets[0]);
	if (strstr(out, "strace not found") || strstr(out, "no strace result"))
		nt--;
	for (size_t i = 0; i < nt; i++) {
		const char *r = strstr(t, targets[i]);
		cr_assert_not_null(r, "no target row %s:\n%s", targets[i], t);
		const char *end = strchr(r, '\n');
		cr_assert_not_null(end);
		cr_expect(strncmp(end - 7, "| met |", 7) == 0 || strncmp(end - 10, "| missed |", 10) == 0,
			  "no verdict: %.*s", (int)(end - r), r);
		if (i < 2)
			cr_expect_gt(column(r, 2), 0.0, "no ceiling: %.*s", (int)(end - r), r);
	}

	/* The micro-benchmarks, each with a figure. */
	const char *micro[] = {"router: router_normalize_path", "router: router_match alone",
			       "snapshot: compile", "spsc:", "http1:"};
	const char *m = strstr(out, "**micro**");
	cr_assert_not_null(m, "no micro section:\n%s", out);
	for (size_t i = 0; i < sizeof(micro) / sizeof(micro[0]); i++) {
		const char *r = strstr(m, micro[i]);
		cr_assert_not_null(r, "no micro row %s:\n%s", micro[i], m);
		const char *v = strstr(r, " | ");
		cr_assert_not_null(v);
		cr_expect_gt(strtod(v + 3, NULL), 0.0, "micro %s", micro[i]);
	}
}

/* bench/ab.sh, one short round: a row per setting and HAProxy's, one of
 * them naming its binary (LABEL@BINARY), with the p99 ratio. */
Test(bench, ab_harness_runs, .init = h_setup, .fini = h_teardown, .timeout = 120)
{
	const char *bin = getenv("RINGRESS_BIN");
	cr_assert(bin && *bin, "RINGRESS_BIN is not set");
	char b[1100];
	snprintf(b, sizeof(b), "b@%s:--batch-wait-usec 0", bin);
	const char *out = run_script(
		"ab.sh", (const char *[]){"--rounds", "1", "--duration", "1", "--nginx", "a:", b, NULL},
		100000);
	/* Two sections: every run against HAProxy's, then against nginx's. */
	const char *vs_nginx = strstr(out, "(its req/s / nginx's)");
	cr_assert_not_null(vs_nginx, "no section of ratios to nginx:\n%s", out);
	const char *want[] = {"\na: req/s ", "\nb: req/s ", "\nnginx: req/s ",
			      "\nhaproxy: req/s 1.00x, CPU 1.00x, p99 1.00x"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *at = strstr(out, want[i]);
		cr_expect(at && at < vs_nginx, "no \"%s\" line against HAProxy:\n%s", want[i] + 1, out);
	}
	const char *want_n[] = {"\na: req/s ", "\nhaproxy: req/s ",
				"\nnginx: req/s 1.00x, CPU 1.00x, p99 1.00x"};
	for (size_t i = 0; i < sizeof(want_n) / sizeof(want_n[0]); i++)
		cr_expect_not_null(strstr(vs_nginx, want_n[i]), "no \"%s\" line against nginx:\n%s",
				   want_n[i] + 1, out);
	cr_expect_null(strstr(out, "(errors)"), "errors in a run:\n%s", out);
}

Test(bench, ab_harness_refuses_a_bad_cpu_share, .init = h_setup, .fini = h_teardown, .timeout = 30)
{
	int st;
	const char *out =
		spawn_script("ab.sh", (const char *[]){"--proxy-cpu", "150", "a:", NULL}, 20000, &st);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "exit status %d, want 2:\n%s", st, out);
	cr_expect_not_null(strstr(out, "--proxy-cpu wants a percentage from 1 to 100, not 150"),
			   "no message naming the bad value:\n%s", out);
}
