/* micro.c - micro-benchmarks of ringress's data-plane building blocks
 * (ringress-micro, run by bench/run.sh):
 *
 *   router     ns per router_match over 10,000 hosts x 10 paths, with the
 *              path normalisation a request goes through
 *   snapshot   compile time and heap of a snapshot of 10,000 Ingresses
 *              (one host, 10 paths and 5 endpoints each)
 *   spsc       items per second through the SPSC queue between two threads
 *              (the control thread -> shard path of snapshots)
 *   http1      ns per request for llhttp parsing of a browser-like request
 *              head, the header scan and the rewrite into the head forwarded
 *              upstream
 *
 * Usage: ringress-micro [--quick]   (prints a Markdown table)
 * Every figure is the best of several rounds (the machine is shared); the
 * SPSC rate also gives the worst round. */
#include "core/http1.h"
#include "core/router.h"
#include "core/snapshot.h"
#include "core/spsc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HOSTS 10000
#define PATHS 10
#define EPS 5

static int quick;
static volatile uintptr_t sink; /* keeps results alive */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "ringress-micro: %s failed\n", what);
	exit(1);
}

/* ---- snapshot of 10,000 Ingresses ---- */

static struct snapshot *build_snapshot(double *secs, size_t *heap)
{
	struct mallinfo2 m0 = mallinfo2();
	double t0 = now_s();
	struct snapshot_builder *b = snapshot_builder_new();
	if (!b)
		die("snapshot_builder_new");
	char name[64], host[64], path[32];
	for (int h = 0; h < HOSTS; h++) {
		snprintf(name, sizeof(name), "ns-%d/svc-%d:80", h % 100, h);
		int be = snapshot_add_backend(b, name);
		if (be < 0)
			die("snapshot_add_backend");
		for (int e = 0; e < EPS; e++) {
			struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(8080)};
			sa.sin_addr.s_addr = htonl(0x0a000000u | (uint32_t)(h * EPS + e));
			if (snapshot_add_endpoint(b, be, (struct sockaddr *)&sa, sizeof(sa)) < 0)
				die("snapshot_add_endpoint");
		}
		snprintf(host, sizeof(host), "app-%d.example.com", h);
		for (int p = 0; p < PATHS; p++) {
			snprintf(path, sizeof(path), p ? "/api/v%d" : "/", p);
			if (snapshot_add_route(b, host, path, p % 3 == 2 ? SNAP_PATH_EXACT : SNAP_PATH_PREFIX,
					       be) < 0)
				die("snapshot_add_route");
		}
	}
	struct snapshot *s = snapshot_build(b, 1);
	if (!s)
		die("snapshot_build");
	snapshot_builder_free(b);
	*secs = now_s() - t0;
	struct mallinfo2 m1 = mallinfo2();
	*heap = m1.uordblks + m1.hblkhd - m0.uordblks - m0.hblkhd;
	return s;
}

/* ---- router ---- */

struct req {
	char host[40];
	char target[48];
	char norm[48];
	int hostlen, targetlen, normlen;
};

/* ns per lookup; with_norm: the path normalisation of the target included. */
static double bench_router(const struct snapshot *s, int with_norm, uint64_t *hits_out)
{
	const int n = 1 << 16;
	struct req *rq = malloc(sizeof(*rq) * n);
	if (!rq)
		die("malloc");
	uint32_t x = 12345;
	for (int i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		int h = (int)((x >> 8) % HOSTS), p = (int)((x >> 4) % (PATHS + 2));
		snprintf(rq[i].host, sizeof(rq[i].host), "app-%d.example.com", h);
		/* Paths below the rules, exact hits, misses to "/" and query strings. */
		snprintf(rq[i].target, sizeof(rq[i].target), p < PATHS ? "/api/v%d/items?id=%d" : "/static/x%d",
			 p, i);
		rq[i].hostlen = (int)strlen(rq[i].host);
		rq[i].targetlen = (int)strlen(rq[i].target);
		rq[i].normlen = router_normalize_path(rq[i].target, (size_t)rq[i].targetlen, rq[i].norm,
						      sizeof(rq[i].norm));
		if (rq[i].normlen < 0)
			die("router_normalize_path");
	}
	long iters = quick ? 1000000 : 10000000;
	double best = 1e9;
	char norm[256];
	uint64_t hits = 0;
	for (int round = 0; round < (quick ? 2 : 5); round++) {
		hits = 0;
		double t0 = now_s();
		for (long i = 0; i < iters; i++) {
			const struct req *r = &rq[i & (n - 1)];
			const struct snap_backend *be;
			if (with_norm) {
				int len = router_normalize_path(r->target, (size_t)r->targetlen, norm, sizeof(norm));
				be = router_match(s, r->host, (size_t)r->hostlen, norm, len < 0 ? 0 : (size_t)len);
			} else {
				be = router_match(s, r->host, (size_t)r->hostlen, r->norm, (size_t)r->normlen);
			}
			hits += be != NULL;
			sink = (uintptr_t)be;
		}
		double ns = (now_s() - t0) * 1e9 / (double)iters;
		if (ns < best)
			best = ns;
	}
	free(rq);
	*hits_out = hits;
	return best;
}

/* ---- SPSC queue ---- */

struct spsc_run {
	struct spsc q;
	long n;
	uintptr_t sum;
};

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set); /* best effort */
}

static void *spsc_consumer(void *arg)
{
	struct spsc_run *r = arg;
	pin(1);
	uintptr_t sum = 0;
	for (long got = 0; got < r->n;) {
		void *p = spsc_pop(&r->q);
		if (p) {
			sum += (uintptr_t)p;
			got++;
		} else {
			__builtin_ia32_pause();
		}
	}
	r->sum = sum;
	return NULL;
}

/* Best and worst rate of several rounds: the rate is bimodal, high when the
 * producer runs ahead and the queue fills (the consumer then reads whole
 * cache lines of slots), low when the consumer keeps pace and every item
 * moves the shared lines between the CPUs. */
static double bench_spsc(double *worst)
{
	double best = 0;
	*worst = 1e18;
	for (int round = 0; round < (quick ? 2 : 5); round++) {
		struct spsc_run r = {.n = quick ? 2000000 : 10000000};
		if (spsc_init(&r.q, 1024) < 0)
			die("spsc_init");
		pthread_t t;
		double t0 = now_s();
		if (pthread_create(&t, NULL, spsc_consumer, &r))
			die("pthread_create");
		pin(0);
		uintptr_t sum = 0;
		for (long i = 1; i <= r.n; i++) {
			while (!spsc_push(&r.q, (void *)(uintptr_t)i))
				__builtin_ia32_pause();
			sum += (uintptr_t)i;
		}
		pthread_join(t, NULL);
		double rate = (double)r.n / (now_s() - t0);
		if (r.sum != sum)
			die("spsc (items lost or reordered)");
		spsc_deinit(&r.q);
		if (rate > best)
			best = rate;
		if (rate < *worst)
			*worst = rate;
	}
	cpu_set_t all;
	CPU_ZERO(&all);
	for (int i = 0; i < CPU_SETSIZE; i++)
		CPU_SET(i, &all);
	pthread_setaffinity_np(pthread_self(), sizeof(all), &all);
	return best;
}

/* ---- llhttp parse + header rewrite ---- */

static const char request[] =
	"GET /api/v3/items?id=42&sort=desc HTTP/1.1\r\n"
	"Host: app-42.example.com\r\n"
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
	"Accept-Language: en-US,en;q=0.5\r\n"
	"Accept-Encoding: gzip, deflate, br\r\n"
	"Connection: keep-alive\r\n"
	"Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n"
	"Upgrade-Insecure-Requests: 1\r\n"
	"Sec-Fetch-Dest: document\r\n"
	"Sec-Fetch-Mode: navigate\r\n"
	"Sec-Fetch-Site: none\r\n"
	"X-Forwarded-For: 203.0.113.7\r\n"
	"\r\n";

/* What the small case of bench/run.sh carries: wrk's request and the
 * origin's (nginx 1.22) response to it. */
static const char small_request[] = "GET /index.html HTTP/1.1\r\n"
				    "Host: 127.0.0.1:8080\r\n"
				    "\r\n";
static const char small_response[] = "HTTP/1.1 200 OK\r\n"
				     "Server: nginx/1.22.1\r\n"
				     "Date: Fri, 27 Nov 2026 05:00:00 GMT\r\n"
				     "Content-Type: text/html\r\n"
				     "Content-Length: 100\r\n"
				     "Last-Modified: Fri, 27 Nov 2026 04:00:00 GMT\r\n"
				     "Connection: keep-alive\r\n"
				     "ETag: \"6926dc40-64\"\r\n"
				     "Accept-Ranges: bytes\r\n"
				     "\r\n";

/* ns per head: llhttp parse of text (a request or a response head), the
 * scan, the rewrite ringress forwards, and the head's blocks taken from and
 * given back to the block cache. */
static double bench_http1(llhttp_type_t type, const char *text, size_t len, size_t *out_len)
{
	llhttp_settings_t settings;
	http1_settings_init(&settings);
	struct http1_head head = {0};
	llhttp_t p;
	char out[4096];
	struct http1_fwd fwd = {.client_ip = "198.51.100.9", .proto = "http", .port = 80,
				.request_id = "6f1c2a9e0b7d4e3f8a5b6c7d8e9f0a1b"};
	long iters = quick ? 200000 : 2000000;
	double best = 1e9;
	for (int round = 0; round < (quick ? 2 : 5); round++) {
		double t0 = now_s();
		for (long i = 0; i < iters; i++) {
			llhttp_init(&p, type, &settings);
			p.data = &head;
			http1_head_reset(&head);
			head.limit = 32768;
			if (http1_head_append(&head, text, len) < 0)
				die("http1_head_append");
			head.event = HTTP1_EV_NONE;
			llhttp_errno_t err = llhttp_execute(&p, head.buf, head.len);
			if (err != HPE_PAUSED || head.event != HTTP1_EV_HEADERS)
				die("llhttp_execute");
			struct http1_info info;
			http1_head_scan(&head, &p, &info);
			int n = type == HTTP_REQUEST
					? http1_rewrite_request(&head, &info, &p, &fwd, out, sizeof(out))
					: http1_rewrite_response(&head, &info, &p, false, false, false,
								 NULL, out, sizeof(out));
			if (n <= 0)
				die("http1_rewrite");
			*out_len = (size_t)n;
			sink = (uintptr_t)out[n - 1];
			/* As the proxy does at the end of each request: the
			 * head's blocks go back to the thread's block cache. */
			http1_head_free(&head);
		}
		double ns = (now_s() - t0) * 1e9 / (double)iters;
		if (ns < best)
			best = ns;
	}
	return best;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else {
			fprintf(stderr, "usage: ringress-micro [--quick]\n");
			return 2;
		}
	}
	double build_s;
	size_t heap;
	struct snapshot *s = build_snapshot(&build_s, &heap);
	uint64_t hits, hits2;
	double router_ns = bench_router(s, 1, &hits);
	double match_ns = bench_router(s, 0, &hits2);
	double spsc_worst;
	double spsc_rate = bench_spsc(&spsc_worst);
	size_t fwd_len = 0, small_req_len = 0, small_resp_len = 0;
	double http_ns = bench_http1(HTTP_REQUEST, request, sizeof(request) - 1, &fwd_len);
	double small_req_ns = bench_http1(HTTP_REQUEST, small_request, sizeof(small_request) - 1,
					  &small_req_len);
	double small_resp_ns = bench_http1(HTTP_RESPONSE, small_response, sizeof(small_response) - 1,
					   &small_resp_len);
	snapshot_release(s);

	printf("| micro-benchmark | result |\n|---|---:|\n");
	printf("| router: router_normalize_path + router_match, %d hosts x %d paths | %.1f ns/lookup "
	       "(%llu of the last round's lookups matched) |\n",
	       HOSTS, PATHS, router_ns, (unsigned long long)hits);
	printf("| router: router_match alone (normalised paths) | %.1f ns/lookup (%llu matched) |\n",
	       match_ns, (unsigned long long)hits2);
	printf("| snapshot: compile %d Ingresses (%d routes, %d endpoints) | %.1f ms, %.1f MiB heap |\n",
	       HOSTS, HOSTS * PATHS, HOSTS * EPS, build_s * 1e3, (double)heap / 1048576.0);
	printf("| spsc: items between two threads (CPUs 0 and 1), best / worst round | %.1f / %.1f M items/s |\n",
	       spsc_rate / 1e6, spsc_worst / 1e6);
	printf("| http1: llhttp parse + scan + rewrite of a %zu-byte request head (%zu bytes out) | "
	       "%.0f ns/request |\n",
	       sizeof(request) - 1, fwd_len, http_ns);
	printf("| http1: the same for the small case's %zu-byte request (wrk) and %zu-byte response "
	       "head (nginx; %zu and %zu bytes out) | %.0f + %.0f ns |\n",
	       sizeof(small_request) - 1, sizeof(small_response) - 1, small_req_len, small_resp_len,
	       small_req_ns, small_resp_ns);
	return 0;
}
