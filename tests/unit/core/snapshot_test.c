/* snapshot_test.c - builder, endpoints, refcounting and scale. */
#include "core/router.h"
#include "core/snapshot.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Adds the IPv4 endpoint ip:port to backend id. */
static int add_v4(struct snapshot_builder *b, int id, const char *ip, uint16_t port)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(port) };
	cr_assert_eq(inet_pton(AF_INET, ip, &in.sin_addr), 1);
	return snapshot_add_endpoint(b, id, (struct sockaddr *)&in, sizeof(in));
}

/* Adds the IPv6 endpoint ip:port to backend id. */
static int add_v6(struct snapshot_builder *b, int id, const char *ip, uint16_t port)
{
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
	cr_assert_eq(inet_pton(AF_INET6, ip, &in6.sin6_addr), 1);
	return snapshot_add_endpoint(b, id, (struct sockaddr *)&in6, sizeof(in6));
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(snapshot, refcount)
{
	struct snapshot_builder *b = snapshot_builder_new();
	cr_assert_not_null(b);
	struct snapshot *s = snapshot_build(b, 42);
	snapshot_builder_free(b);
	cr_assert_not_null(s);
	cr_expect_eq(s->generation, 42);
	cr_expect_eq(atomic_load(&s->refs), 1);
	cr_expect_eq(snapshot_acquire(s), s);
	cr_expect_eq(snapshot_acquire(s), s);
	cr_expect_eq(atomic_load(&s->refs), 3);
	snapshot_release(s);
	snapshot_release(s);
	cr_expect_eq(atomic_load(&s->refs), 1);
	snapshot_release(s); /* frees; valgrind checks nothing leaks */
	snapshot_release(NULL);
	snapshot_builder_free(NULL);
}

Test(snapshot, backends_by_name)
{
	struct snapshot_builder *b = snapshot_builder_new();
	int a = snapshot_add_backend(b, "ns/a:80");
	int c = snapshot_add_backend(b, "ns/c:80");
	cr_expect_eq(a, 0);
	cr_expect_eq(c, 1);
	cr_expect_eq(snapshot_add_backend(b, "ns/a:80"), a);
	cr_expect_eq(snapshot_add_backend(b, "ns/c:80"), c);
	/* many names: ids stay stable across table growth */
	char name[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "ns/s%d:80", i);
		cr_assert_eq(snapshot_add_backend(b, name), i + 2);
	}
	for (int i = 0; i < 1000; i += 97) {
		snprintf(name, sizeof(name), "ns/s%d:80", i);
		cr_expect_eq(snapshot_add_backend(b, name), i + 2);
	}
	struct snapshot *s = snapshot_build(b, 1);
	snapshot_builder_free(b);
	cr_assert_eq(s->nbackends, 1002);
	for (uint32_t i = 0; i < s->nbackends; i++)
		cr_assert_eq(s->backends[i].id, i);
	cr_expect_str_eq(s->backends[1].name, "ns/c:80");
	cr_expect_str_eq(s->backends[501].name, "ns/s499:80");
	cr_expect_eq(s->backends[0].nendpoints, 0);
	snapshot_release(s);
}

Test(snapshot, endpoints_dedupe_and_text)
{
	struct snapshot_builder *b = snapshot_builder_new();
	int id = snapshot_add_backend(b, "ns/svc:80");
	cr_expect_eq(add_v4(b, id, "10.0.0.1", 8080), 0);
	cr_expect_eq(add_v4(b, id, "10.0.0.2", 8080), 0);
	cr_expect_eq(add_v4(b, id, "10.0.0.1", 8080), 0); /* duplicate */
	cr_expect_eq(add_v4(b, id, "10.0.0.1", 8081), 0); /* other port */
	cr_expect_eq(add_v6(b, id, "::1", 8080), 0);
	cr_expect_eq(add_v6(b, id, "::1", 8080), 0); /* duplicate */
	cr_expect_eq(add_v6(b, id, "fd00::a:1", 443), 0);

	/* duplicates with different padding bytes are still duplicates */
	struct sockaddr_in in;
	memset(&in, 0xff, sizeof(in));
	in.sin_family = AF_INET;
	in.sin_port = htons(8080);
	inet_pton(AF_INET, "10.0.0.2", &in.sin_addr);
	cr_expect_eq(snapshot_add_endpoint(b, id, (struct sockaddr *)&in, sizeof(in)), 0);

	struct sockaddr_un_like {
		sa_family_t fam;
		char data[14];
	} bad = { .fam = AF_UNIX };
	cr_expect_eq(snapshot_add_endpoint(b, id, (struct sockaddr *)&bad, sizeof(bad)), -EINVAL);
	cr_expect_eq(snapshot_add_endpoint(b, id + 1, (struct sockaddr *)&in, sizeof(in)), -EINVAL);
	cr_expect_eq(snapshot_add_endpoint(b, id, (struct sockaddr *)&in, 4), -EINVAL);

	struct snapshot *s = snapshot_build(b, 1);
	snapshot_builder_free(b);
	const struct snap_backend *be = &s->backends[id];
	cr_assert_eq(be->nendpoints, 5);
	cr_expect_str_eq(be->endpoints[0].text, "10.0.0.1:8080");
	cr_expect_str_eq(be->endpoints[1].text, "10.0.0.2:8080");
	cr_expect_str_eq(be->endpoints[2].text, "10.0.0.1:8081");
	cr_expect_str_eq(be->endpoints[3].text, "[::1]:8080");
	cr_expect_str_eq(be->endpoints[4].text, "[fd00::a:1]:443");
	cr_expect_eq(be->endpoints[0].addrlen, sizeof(struct sockaddr_in));
	cr_expect_eq(be->endpoints[3].addrlen, sizeof(struct sockaddr_in6));
	cr_expect_eq(be->endpoints[3].addr.sa.sa_family, AF_INET6);
	cr_expect_eq(ntohs(be->endpoints[4].addr.in6.sin6_port), 443);
	snapshot_release(s);
}

Test(snapshot, builder_reusable_for_two_builds)
{
	struct snapshot_builder *b = snapshot_builder_new();
	int id = snapshot_add_backend(b, "svc");
	cr_assert_eq(snapshot_add_route(b, "a.com", "/", SNAP_PATH_PREFIX, id), 0);
	struct snapshot *s1 = snapshot_build(b, 1);
	struct snapshot *s2 = snapshot_build(b, 2);
	snapshot_builder_free(b);
	cr_expect_neq(s1, s2);
	cr_expect_eq(router_match(s1, "a.com", 5, "/", 1), &s1->backends[0]);
	cr_expect_eq(router_match(s2, "a.com", 5, "/", 1), &s2->backends[0]);
	snapshot_release(s1);
	cr_expect_eq(router_match(s2, "a.com", 5, "/x", 2), &s2->backends[0]);
	snapshot_release(s2);
}

Test(snapshot, scale_10k_hosts_10_paths, .timeout = 30)
{
	char host[64], path[64], name[64];
	double t0 = now();
	struct snapshot_builder *b = snapshot_builder_new();

	for (int h = 0; h < 10000; h++) {
		snprintf(host, sizeof(host), "host-%d.example.com", h);
		for (int p = 0; p < 10; p++) {
			snprintf(name, sizeof(name), "ns%d/svc%d:80", h, p);
			int id = snapshot_add_backend(b, name);
			cr_assert_geq(id, 0);
			struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(8080),
						  .sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)id) };
			cr_assert_eq(snapshot_add_endpoint(b, id, (struct sockaddr *)&in, sizeof(in)), 0);
			snprintf(path, sizeof(path), "/app%d", p);
			cr_assert_eq(snapshot_add_route(b, host, path,
							p % 2 ? SNAP_PATH_EXACT : SNAP_PATH_PREFIX, id),
				     0);
		}
	}
	cr_assert_eq(snapshot_add_route(b, "*.wild.example.com", "/", SNAP_PATH_PREFIX, 0), 0);
	struct snapshot *s = snapshot_build(b, 7);
	snapshot_builder_free(b);
	double t1 = now();
	cr_assert_not_null(s);
	cr_log_info("10k hosts x 10 paths built in %.3f s", t1 - t0);
	cr_expect_eq(s->nbackends, 100000);
	cr_expect_eq(s->hosts_cap & (s->hosts_cap - 1), 0);
	cr_expect_geq(s->hosts_cap, 20000);

	const struct snap_backend *be = router_match(s, "HOST-1234.example.com:80", 24, "/app4/x", 7);
	cr_assert_not_null(be);
	cr_expect_str_eq(be->name, "ns1234/svc4:80");
	cr_expect_str_eq(be->endpoints[0].text, "10.0.48.56:8080"); /* id 12344 */
	be = router_match(s, "host-9999.example.com", 21, "/app3", 5);
	cr_assert_not_null(be);
	cr_expect_str_eq(be->name, "ns9999/svc3:80");
	cr_expect_null(router_match(s, "host-9999.example.com", 21, "/app3/x", 7));
	cr_expect_null(router_match(s, "host-10000.example.com", 22, "/app0", 5));
	cr_expect_eq(router_match(s, "x.wild.example.com", 18, "/q", 2), &s->backends[0]);

	/* a million lookups over 10k hosts all hit */
	t0 = now();
	unsigned hits = 0;
	for (int i = 0; i < 1000000; i++) {
		int n = snprintf(host, sizeof(host), "host-%d.example.com", i % 10000);
		hits += router_match(s, host, (size_t)n, "/app0/a/b", 9) != NULL;
	}
	t1 = now();
	cr_expect_eq(hits, 1000000);
	cr_log_info("1M lookups in %.3f s (timing is measured in bench/, not asserted)", t1 - t0);
	snapshot_release(s);
}

static int tls_ctx_marker, tls_ctx_frees;
static void count_tls_ctx_free(void *ctx)
{
	cr_expect_eq(ctx, &tls_ctx_marker);
	tls_ctx_frees++;
}

Test(snapshot, endpoint_only_rebuild_shares_routes)
{
	struct snapshot_builder *b = snapshot_builder_new();
	int web = snapshot_add_backend(b, "ns/web:80"), api = snapshot_add_backend(b, "ns/api:80");
	struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(8080)};
	in.sin_addr.s_addr = htonl(0x0a000001);
	cr_assert_eq(snapshot_add_endpoint(b, web, (struct sockaddr *)&in, sizeof(in)), 0);
	cr_assert_eq(snapshot_add_route(b, "a.example.com", "/", SNAP_PATH_PREFIX, web), 0);
	cr_assert_eq(snapshot_add_route(b, "a.example.com", "/api", SNAP_PATH_PREFIX, api), 0);
	cr_assert_eq(snapshot_set_default_backend(b, api), 0);
	struct snapshot *s1 = snapshot_build(b, 1);
	snapshot_builder_free(b);
	cr_assert_not_null(s1);
	s1->tls_ctx = &tls_ctx_marker; /* as the TLS layer sets it before publishing */
	s1->tls_ctx_free = count_tls_ctx_free;
	cr_expect_eq(router_match(s1, "a.example.com", 13, "/api/x", 6)->nendpoints, 0);

	/* New endpoints for api only. */
	b = snapshot_builder_new();
	cr_assert_eq(snapshot_add_backend(b, "ns/web:80"), 0);
	cr_assert_eq(snapshot_add_backend(b, "ns/api:80"), 1);
	cr_assert_eq(snapshot_add_endpoint(b, 0, (struct sockaddr *)&in, sizeof(in)), 0);
	in.sin_addr.s_addr = htonl(0x0a000002);
	cr_assert_eq(snapshot_add_endpoint(b, 1, (struct sockaddr *)&in, sizeof(in)), 0);
	struct snapshot *s2 = snapshot_rebuild_endpoints(s1, b, 2);
	snapshot_builder_free(b);
	cr_assert_not_null(s2);
	cr_expect_eq(s2->generation, 2);
	const struct snap_backend *be = router_match(s2, "a.example.com", 13, "/api/x", 6);
	cr_assert_not_null(be);
	cr_expect_eq(be, &s2->backends[1]);
	cr_expect_str_eq(be->endpoints[0].text, "10.0.0.2:8080");
	cr_expect_eq(s2->default_backend, &s2->backends[1]);
	cr_expect_eq(s2->hosts, s1->hosts, "routes are shared");
	/* So are the compiled certificates, freed once, with the routes. */
	cr_expect_eq(s2->tls_ctx, &tls_ctx_marker);
	/* The old snapshot still answers with its own endpoints. */
	cr_expect_eq(router_match(s1, "a.example.com", 13, "/api/x", 6)->nendpoints, 0);
	snapshot_release(s1); /* the shared routes stay for s2 */
	cr_expect_eq(tls_ctx_frees, 0, "certificates freed under a snapshot that uses them");
	cr_expect_str_eq(router_match(s2, "a.example.com", 13, "/", 1)->name, "ns/web:80");

	/* Backends that do not match: refused. */
	b = snapshot_builder_new();
	cr_assert_eq(snapshot_add_backend(b, "ns/other:80"), 0);
	cr_expect_null(snapshot_rebuild_endpoints(s2, b, 3));
	snapshot_builder_free(b);
	snapshot_release(s2);
	cr_expect_eq(tls_ctx_frees, 1);
}
