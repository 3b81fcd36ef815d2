/* balancer_test.c - endpoint choice, consistent hashing, passive health. */
#include "core/balancer.h"
#include "core/snapshot.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* A snapshot with one backend of n endpoints 10.0.0.1.. (skip one index). */
static struct snapshot *make(int n, int skip, const struct snap_backend_opts *o)
{
	struct snapshot_builder *b = snapshot_builder_new();
	int id = snapshot_add_backend(b, "ns/svc:80");
	if (o)
		cr_assert_eq(snapshot_set_backend_opts(b, id, o), 0);
	for (int i = 0; i < n; i++) {
		if (i == skip)
			continue;
		struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(8080)};
		in.sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)i);
		cr_assert_eq(snapshot_add_endpoint(b, id, (struct sockaddr *)&in, sizeof(in)), 0);
	}
	cr_assert_eq(snapshot_add_route(b, NULL, "/", SNAP_PATH_PREFIX, id), 0);
	struct snapshot *s = snapshot_build(b, 1);
	snapshot_builder_free(b);
	cr_assert_not_null(s);
	return s;
}

static void check_spread(uint8_t lb)
{
	struct balancer bal;
	struct bal_view v;
	struct snap_backend_opts o = {.lb = lb};
	struct snapshot *s = make(10, -1, &o);
	int count[10] = {0};

	balancer_init(&bal, SNAP_LB_ROUND_ROBIN, 3, 1000, 42);
	cr_assert_eq(balancer_view_init(&bal, &v, s, 3), 0);
	for (int i = 0; i < 1000; i++) {
		int e = balancer_pick(&bal, &v, &s->backends[0], 0, NULL, 0, 1000);
		cr_assert(e >= 0 && e < 10);
		count[e]++;
		/* Requests complete at once with a similar latency. */
		struct ep_state *st = v.eps[e];
		st->active++;
		st->active--;
		balancer_done(&bal, st, true, 5, 1000 + (uint64_t)i);
	}
	for (int e = 0; e < 10; e++) {
		cr_expect_gt(count[e], 0, "lb %u: endpoint %d never used", lb, e);
		cr_expect_leq(count[e], 200, "lb %u: endpoint %d got %d of 1000", lb, e, count[e]);
	}
	balancer_view_deinit(&v);
	balancer_deinit(&bal);
	snapshot_release(s);
}

Test(balancer, round_robin_even)
{
	check_spread(SNAP_LB_ROUND_ROBIN);
}

Test(balancer, least_request_even)
{
	check_spread(SNAP_LB_LEAST_REQUEST);
}

Test(balancer, ewma_even)
{
	check_spread(SNAP_LB_EWMA);
}

Test(balancer, round_robin_starts_at_shard_offset)
{
	struct balancer bal;
	struct bal_view v0, v1;
	struct snapshot *s = make(4, -1, NULL);

	balancer_init(&bal, SNAP_LB_ROUND_ROBIN, 3, 1000, 1);
	cr_assert_eq(balancer_view_init(&bal, &v0, s, 0), 0);
	cr_assert_eq(balancer_view_init(&bal, &v1, s, 1), 0);
	cr_expect_eq(balancer_pick(&bal, &v0, &s->backends[0], 0, NULL, 0, 0), 0);
	cr_expect_eq(balancer_pick(&bal, &v1, &s->backends[0], 0, NULL, 0, 0), 1);
	cr_expect_eq(v0.eps[2], v1.eps[2], "views share one state per address");
	balancer_view_deinit(&v0);
	balancer_view_deinit(&v1);
	balancer_deinit(&bal);
	snapshot_release(s);
}

Test(balancer, least_request_prefers_idle)
{
	struct balancer bal;
	struct bal_view v;
	struct snap_backend_opts o = {.lb = SNAP_LB_LEAST_REQUEST};
	struct snapshot *s = make(2, -1, &o);

	balancer_init(&bal, SNAP_LB_ROUND_ROBIN, 3, 1000, 7);
	cr_assert_eq(balancer_view_init(&bal, &v, s, 0), 0);
	v.eps[0]->active = 50;
	for (int i = 0; i < 100; i++)
		cr_expect_eq(balancer_pick(&bal, &v, &s->backends[0], 0, NULL, 0, 0), 1);
	v.eps[0]->active = 0;
	balancer_view_deinit(&v);
	balancer_deinit(&bal);
	snapshot_release(s);
}

Test(balancer, hash_sticky_and_minimal_movement)
{
	struct balancer bal;
	struct bal_view v10, v9;
	struct snap_backend_opts o = {.lb = SNAP_LB_HASH, .hash_src = SNAP_HASH_HEADER};
	struct snapshot *s10 = make(10, -1, &o), *s9 = make(10, 4, &o);
	int moved = 0, on_removed = 0, count[10] = {0};

	cr_assert_eq(s10->backends[0].nring, 10 * SNAP_RING_POINTS);
	balancer_init(&bal, SNAP_LB_ROUND_ROBIN, 3, 1000, 9);
	cr_assert_eq(balancer_view_init(&bal, &v10, s10, 0), 0);
	cr_assert_eq(balancer_view_init(&bal, &v9, s9, 0), 0);
	for (int k = 0; k < 2000; k++) {
		char key[32];
		int n = snprintf(key, sizeof(key), "user-%d", k);
		uint32_t h = snapshot_hash(key, (size_t)n, 0);
		int a = balancer_pick(&bal, &v10, &s10->backends[0], h, NULL, 0, 0);
		cr_assert_eq(balancer_pick(&bal, &v10, &s10->backends[0], h, NULL, 0, 0), a,
			     "same key, same endpoint");
		count[a]++;
		int b = balancer_pick(&bal, &v9, &s9->backends[0], h, NULL, 0, 0);
		const char *ta = s10->backends[0].endpoints[a].text;
		const char *tb = s9->backends[0].endpoints[b].text;
		if (!strcmp(ta, "10.0.0.5:8080"))
			on_removed++;
		else if (strcmp(ta, tb))
			moved++;
	}
	cr_expect_eq(moved, 0, "%d keys moved although their endpoint stayed", moved);
	cr_expect_gt(on_removed, 0);
	for (int e = 0; e < 10; e++)
		cr_expect(count[e] > 50 && count[e] < 400, "endpoint %d holds %d of 2000 keys", e,
			  count[e]);
	balancer_view_deinit(&v10);
	balancer_view_deinit(&v9);
	balancer_deinit(&bal);
	snapshot_release(s10);
	snapshot_release(s9);
}

Test(balancer, ejection_backoff_and_panic)
{
	struct balancer bal;
	struct bal_view v;
	struct snapshot *s = make(3, -1, NULL);

	balancer_init(&bal, SNAP_LB_ROUND_ROBIN, 3, 1000, 3);
	cr_assert_eq(balancer_view_init(&bal, &v, s, 0), 0);
	struct ep_state *bad = v.eps[1];
	balancer_done(&bal, bad, false, 0, 100);
	balancer_done(&bal, bad, false, 0, 100);
	cr_expect_eq(bad->eject_until, 0, "ejected before max-fails");
	balancer_done(&bal, bad, false, 0, 100);
	cr_expect_eq(bad->eject_until, 1100);
	for (int i = 0; i < 30; i++)
		cr_expect_neq(balancer_pick(&bal, &v, &s->backends[0], 0, NULL, 0, 500), 1);
	/* Back after the fail timeout; a new failure doubles the back-off. */
	int seen = 0;
	for (int i = 0; i < 3; i++)
		seen |= balancer_pick(&bal, &v, &s->backends[0], 0, NULL, 0, 1200) == 1;
	cr_expect(seen);
	balancer_done(&bal, bad, false, 0, 1200);
	cr_expect_eq(bad->eject_until, 1200 + 2000);
	balancer_done(&bal, bad, true, 3, 1300);
	cr_expect_eq(bad->eject_until, 0, "a success clears the ejection");

	/* Every endpoint ejected: panic mode still answers. */
	for (int e = 0; e < 3; e++)
		for (int i = 0; i < 3; i++)
			balancer_done(&bal, v.eps[e], false, 0, 2000);
	int e = balancer_pick(&bal, &v, &s->backends[0], 0, NULL, 0, 2001);
	cr_expect(e >= 0 && e < 3);
	balancer_view_deinit(&v);
	balancer_deinit(&bal);
	snapshot_release(s);
}

Test(balancer, tried_endpoints_avoided)
{
	struct balancer bal;
	struct bal_view v;
	struct snapshot *s = make(3, -1, NULL);
	uint32_t tried[2] = {0, 2};

	balancer_init(&bal, SNAP_LB_ROUND_ROBIN, 3, 1000, 5);
	cr_assert_eq(balancer_view_init(&bal, &v, s, 0), 0);
	for (int i = 0; i < 10; i++)
		cr_expect_eq(balancer_pick(&bal, &v, &s->backends[0], 0, tried, 2, 0), 1);
	uint32_t all[3] = {0, 1, 2};
	int e = balancer_pick(&bal, &v, &s->backends[0], 0, all, 3, 0);
	cr_expect(e >= 0 && e < 3, "all tried: still an answer");
	balancer_view_deinit(&v);
	balancer_deinit(&bal);
	snapshot_release(s);
}

Test(balancer, sweep_keeps_states_in_use)
{
	struct balancer bal;
	struct bal_view v;
	struct snapshot *s = make(3, -1, NULL), *t = make(3, 0, NULL);

	balancer_init(&bal, SNAP_LB_ROUND_ROBIN, 3, 1000, 5);
	cr_assert_eq(balancer_view_init(&bal, &v, s, 0), 0);
	cr_expect_eq(bal.count, 3);
	struct ep_state *gone = v.eps[0];
	gone->active = 1; /* a request in flight */
	balancer_view_deinit(&v);
	cr_assert_eq(balancer_view_init(&bal, &v, t, 0), 0);
	struct bal_view *views[1] = {&v};
	const struct snapshot *snaps[1] = {t};
	balancer_sweep(&bal, views, 1, snaps);
	cr_expect_eq(bal.count, 3, "a state in use was freed");
	gone->active = 0;
	balancer_sweep(&bal, views, 1, snaps);
	cr_expect_eq(bal.count, 2);
	balancer_view_deinit(&v);
	balancer_deinit(&bal);
	snapshot_release(s);
	snapshot_release(t);
}
