/* failmalloc.c - an LD_PRELOAD library for the integration tests: makes
 * malloc, calloc, realloc and aligned_alloc fail (NULL, ENOMEM) on ringress's shard
 * threads, so that the data plane's out-of-memory paths run for real.
 *
 *   RINGRESS_FAILMALLOC_FILE      failures happen only while this file
 *                                 exists (the test turns them on and off)
 *   RINGRESS_FAILMALLOC_PERMILLE  share of calls that fail (default 300)
 *   RINGRESS_FAILMALLOC_THREADS   the threads affected: those whose name
 *                                 starts with this (default "shard-", the
 *                                 data plane; "control" for the control
 *                                 thread); start-up and the others keep
 *                                 working
 *
 * A fatal signal (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) prints a
 * backtrace to stderr, which the tests show with the log, before the
 * process dies. */
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

/* initial-exec: a dynamic TLS block would be allocated with malloc, here. */
#define TLS_VAR static __thread __attribute__((tls_model("initial-exec")))
TLS_VAR bool chosen;    /* a thread of the chosen kind */
TLS_VAR uint32_t calls; /* by a thread not (yet) chosen */
TLS_VAR uint64_t seed;

static bool should_fail(void)
{
	static const char *file, *prefix;
	static int permille = -1;
	if (permille < 0) {
		const char *v = getenv("RINGRESS_FAILMALLOC_PERMILLE");
		file = getenv("RINGRESS_FAILMALLOC_FILE");
		prefix = getenv("RINGRESS_FAILMALLOC_THREADS");
		if (!prefix || !*prefix)
			prefix = "shard-";
		permille = v ? atoi(v) : 300;
	}
	if (!file)
		return false;
	if (!chosen) {
		/* A thread is named after it starts: look again now and then
		 * (prctl is a system call). */
		if (calls++ & 255)
			return false;
		char name[17] = {0};
		prctl(PR_GET_NAME, name);
		if (strncmp(name, prefix, strlen(prefix)))
			return false;
		chosen = true;
		seed = (uintptr_t)&seed * 0x9e3779b97f4a7c15ull | 1;
	}
	int e = errno; /* a successful malloc leaves errno alone */
	bool on = !access(file, F_OK);
	errno = e;
	if (!on)
		return false;
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return (int)(seed % 1000) < permille;
}

static void on_fatal(int sig)
{
	void *frames[32];
	char msg[64];
	int n = backtrace(frames, 32);
	int len = snprintf(msg, sizeof(msg), "failmalloc: fatal signal %d, backtrace:\n", sig);
	if (write(2, msg, (size_t)len) < 0)
		_exit(128 + sig);
	backtrace_symbols_fd(frames, n, 2);
	signal(sig, SIG_DFL);
	raise(sig);
}

__attribute__((constructor)) static void setup(void)
{
	void *frames[2];
	backtrace(frames, 2); /* loads libgcc now, not in the handler */
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], on_fatal);
}

void *malloc(size_t n)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	if (should_fail()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_memalign(align, n);
}
