/* flags_test.c - every flag in `ringress --help` is documented, and bad
 * flags or values exit with status 2 and a one-line reason. */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Runs ringress with args (a shell word list); captures stdout+stderr. */
static int run(const char *args, char *out, size_t cap)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", getenv("RINGRESS_BIN"), args);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(flags, every_flag_documented)
{
	static char help[16384], doc[262144];
	char path[512];
	const char *root = getenv("RINGRESS_ROOT");

	cr_assert_eq(run("--help", help, sizeof(help)), 0);
	snprintf(path, sizeof(path), "%s/docs/configuration.md", root ? root : ".");
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s", path);
	size_t n = fread(doc, 1, sizeof(doc) - 1, f);
	doc[n] = 0;
	fclose(f);
	int nflags = 0;
	for (char *line = strtok(help, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, "  --", 4))
			continue;
		char name[64] = "`--";
		size_t k = 3;
		for (const char *c = line + 4; (*c >= 'a' && *c <= 'z') || *c == '-' ||
					       (*c >= '0' && *c <= '9');
		     c++)
			if (k < sizeof(name) - 1)
				name[k++] = *c;
		name[k] = 0;
		nflags++;
		cr_expect_not_null(strstr(doc, name), "%s is not in docs/configuration.md", name + 1);
	}
	cr_expect_gt(nflags, 30, "help lists %d flags", nflags);
}

Test(flags, bad_input_exits_2)
{
	char out[4096];
	static const char *const cases[][2] = {
		{"--manifests . --http-port 70000", "--http-port"},
		{"--manifests . --proxy-read-timeout soon", "--proxy-read-timeout"},
		{"--manifests . --proxy-body-size 1q", "--proxy-body-size"},
		{"--manifests . --load-balance fastest", "--load-balance"},
		{"--manifests . --load-balance ewma,round_robin", "--load-balance"},
		{"--manifests . --splice-mode zero-copy", "--splice-mode"},
		{"--manifests . --proxy-next-upstream error,sometimes", "--proxy-next-upstream"},
		{"--manifests . --bind not-an-address", "--bind"},
		{"--manifests . --batch-wait-usec 20000", "--batch-wait-usec"},
		{"--manifests . --batch-busy-percent 101", "--batch-busy-percent"},
		{"--manifests . --no-such-flag", "--no-such-flag"},
		{"--manifests /nonexistent/dir", "No such file"},
		{"--manifests . --kubeconfig /x", "--manifests"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = run(cases[i][0], out, sizeof(out));
		cr_expect_eq(rc, 2, "`ringress %s` exited %d: %s", cases[i][0], rc, out);
		cr_expect_not_null(strstr(out, cases[i][1]), "`ringress %s` said: %s", cases[i][0], out);
		cr_expect_lt(strlen(out), 400, "not one short reason: %s", out);
	}
	cr_expect_eq(run("--version", out, sizeof(out)), 0);
	cr_expect(!strncmp(out, "ringress ", 9), "%s", out);
}
