/* harness.h - what the integration tests share: child processes (ringress,
 * ringress-echo, wrk) in their own process groups and always reaped, manifest
 * files in a private temporary directory, curl as a client, and a raw-socket
 * HTTP/1.1 client with timeouts.
 *
 * Every Criterion test that uses it declares `.init = h_setup, .fini =
 * h_teardown`; h_setup also registers h_teardown with atexit, so children die
 * whatever way the test ends. Tests use 127.0.0.1 only and ports of their own
 * (H_PORT(test index, n)). Every wait here has a deadline. */
#ifndef RINGRESS_IT_HARNESS_H
#define RINGRESS_IT_HARNESS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Port n (0..9) of the test numbered idx: 20000 + idx*10 + n. By convention
 * n = 0 is ringress's HTTP port, 9 its admin port, 1..8 backends.
 * Tests run one at a time (--jobs=1), so only the indices within one file
 * must differ; files started from these ranges (routing 0-19, proxy 20-54,
 * upstream 40-64, limits 50-63, ws 64-69, stream 70-79, reload 80-89,
 * signal 90-99, tls 100-103) and some overlap. */
#define H_PORT(idx, n) (20000 + (idx) * 10 + (n))

/* Fixture: makes the temporary directory, ignores SIGPIPE. */
void h_setup(void);
/* Fixture: SIGTERM then SIGKILL every child's process group, reaps them,
 * removes the directory (kept, and its path printed, when RINGRESS_KEEP_TMP
 * is set). Safe to call twice. */
void h_teardown(void);

/* The temporary directory of this test (absolute). */
const char *h_dir(void);
/* The manifests directory inside it (created by h_setup). */
const char *h_manifests(void);

/* ---- processes ---- */

/* Starts argv (argv[0] a path) in its own process group, stdout and stderr
 * appended to h_dir()/<name>.log. Returns the pid, or -errno. */
pid_t h_spawn(const char *name, char *const argv[]);
/* Starts ringress-echo --listen 127.0.0.1:port --name name. Waits for the
 * port (3 s). Returns the pid or -errno. */
pid_t h_echo(const char *name, int port);
/* Starts ringress --manifests h_manifests() --bind 127.0.0.1 --http-port
 * http --admin-port admin --log-level debug, then the extra arguments
 * (NULL-terminated). Does not wait. Returns the pid or -errno. */
pid_t h_ringress(int http, int admin, ...);
/* h_ringress, then waits until admin /readyz answers 200 and the HTTP port
 * accepts (5 s). Returns the pid, or -ETIMEDOUT / -errno. */
pid_t h_ringress_ready(int http, int admin, ...);
/* Sends sig to the process (not its group). */
int h_signal(pid_t pid, int sig);
/* Waits up to timeout_ms for pid to exit; stores its wait status. Returns 0,
 * -ETIMEDOUT (still running) or -errno. The pid is then forgotten. */
int h_wait_exit(pid_t pid, int timeout_ms, int *status);
/* True if pid still runs (and is not a zombie). */
bool h_alive(pid_t pid);
/* VmRSS of pid in KiB, -1 if unreadable. */
long h_rss_kb(pid_t pid);
/* The last max bytes of h_dir()/<name>.log (static buffer), "" if none. */
const char *h_log_tail(const char *name, size_t max);

/* ---- time and sockets ---- */

/* Monotonic milliseconds. */
int64_t h_now_ms(void);
void h_sleep_ms(int ms);
/* Waits until a TCP connect to 127.0.0.1:port succeeds. */
bool h_wait_port(int port, int timeout_ms);
/* Waits until GET /readyz on the admin port answers 200. */
bool h_wait_ready(int admin_port, int timeout_ms);

/* ---- files ---- */

/* Writes h_dir()/rel (printf format) in place (truncate + write). Returns 0
 * or -errno. */
int h_write(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, but through a temporary file renamed over rel (what kubectl-style
 * tools and editors do). */
int h_write_atomic(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Removes h_dir()/rel. */
int h_remove(const char *rel);

/* Kubernetes objects as YAML (malloc'd strings, freed by the caller or left
 * to process exit). */
/* The IngressClass "ringress" for ringress.io/ingress-controller. */
char *h_yaml_class(void);
/* Service ns/svc (port 80 named http) and its EndpointSlice with one
 * endpoint 127.0.0.1:port, ready or not. */
char *h_yaml_backend(const char *ns, const char *svc, int port, bool ready);
/* Ingress ns/name, class ringress, one rule: host (NULL: none), one path of
 * pathType ptype ("Prefix", "Exact", "ImplementationSpecific") to svc:80. */
char *h_yaml_ingress(const char *ns, const char *name, const char *host, const char *path,
		     const char *ptype, const char *svc);

/* ---- HTTP responses ---- */

struct h_resp {
	int status;         /* final status, 0 if none */
	int n_interim;      /* 1xx responses seen before it */
	int interim[8];
	char *head;         /* final response's status line + headers, NUL-terminated */
	char *body;         /* NUL-terminated (body_len excludes the NUL) */
	size_t body_len;
	bool chunked;       /* body came chunked */
	bool has_length;    /* body came with Content-Length */
};

void h_resp_free(struct h_resp *r);
/* Value of the first header named name (case-insensitive) in r->head, NULL if
 * absent. Points into one of 8 rotating static buffers. */
const char *h_header(const struct h_resp *r, const char *name);
/* Number of headers named name. */
int h_header_count(const struct h_resp *r, const char *name);
/* Value of the "key=value" line of an echo body, NULL if absent (rotating
 * static buffers, as h_header). */
const char *h_echo_value(const struct h_resp *r, const char *key);

/* Runs curl -sS --max-time 10 -o BODY -D HEAD -w '%{http_code}' <args>
 * (NULL-terminated) and fills r (head = last header block). Returns curl's
 * exit status (0 ok), or -errno if it could not run. */
int h_curl(struct h_resp *r, const char *arg, ...);

/* ---- raw HTTP/1.1 client ---- */

struct h_conn {
	int fd;
	char *buf;   /* bytes received, not yet consumed */
	size_t len, cap;
	bool eof;
};

/* Connects to 127.0.0.1:port. Returns 0 or -errno. */
int h_conn_open(struct h_conn *c, int port, int timeout_ms);

/* A blocking listening socket on 127.0.0.1:port (backlog as given), or
 * -errno: a backend played by the test itself. */
int h_listen(int port, int backlog);

/* Accepts one connection on listener l within timeout_ms. Returns the
 * (blocking) socket or -errno. */
int h_accept(int l, int timeout_ms);
void h_conn_close(struct h_conn *c);
/* Sends everything or fails: 0, -ETIMEDOUT or -errno. */
int h_conn_send(struct h_conn *c, const void *data, size_t len, int timeout_ms);
int h_conn_sendf(struct h_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads one response (skipping and counting 1xx). head: the request was HEAD
 * (no body). Returns 0, -ETIMEDOUT, -ECONNRESET, -EPIPE (closed before a
 * complete response) or -EPROTO. */
int h_conn_response(struct h_conn *c, struct h_resp *r, bool head, int timeout_ms);
/* Reads only up to the end of the next response head (status line +
 * headers), leaving it unconsumed in c->buf. Returns 0 or as above. */
int h_conn_wait_head(struct h_conn *c, int timeout_ms);
/* Waits until the peer closes (EOF or RST): returns 0 if closed, -ETIMEDOUT
 * if still open after timeout_ms; received data is kept in c->buf. */
int h_conn_wait_closed(struct h_conn *c, int timeout_ms);
/* One request on a fresh connection (Connection: close). host may be NULL
 * (no Host header). Returns as h_conn_response. */
int h_get(struct h_resp *r, int port, const char *host, const char *target);

/* ---- out of memory (tests/support/failmalloc.c) ---- */

/* The processes spawned from now until h_failmalloc_spawned() preload the
 * library named by $RINGRESS_FAILMALLOC (zig build test sets it). While
 * h_failmalloc_on(true), it fails permille in 1000 allocations of their
 * threads whose name starts with `threads` ("shard-", "control"). Returns 0
 * or -ENOENT when the library is not there. */
int h_failmalloc_preload(const char *threads, int permille);
/* The processes that follow do not preload it (curl, say). */
void h_failmalloc_spawned(void);
/* Turns the failures on or off. Returns 0 or -errno. */
int h_failmalloc_on(bool on);

/* ---- misc ---- */

/* CRC-32 (zlib's), crc 0 to start. */
uint32_t h_crc32(uint32_t crc, const void *data, size_t len);
/* ringress-echo's generated body pattern: byte i is symbol i % 64. */
void h_pattern(char *dst, size_t len, uint64_t offset);
/* Appends 1 to max_pieces pieces (NULL-terminated list), picked by the
 * generator *seed (a 64-bit LCG: runs repeat), to dst at *n, keeping below
 * cap: the random middle of a hostile message head. */
void h_random_pieces(char *dst, int *n, size_t cap, uint64_t *seed, const char *const *piece,
		     int max_pieces);

#endif
