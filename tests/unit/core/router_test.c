/* router_test.c - Kubernetes Ingress v1 matching and path normalisation. */
#include "core/router.h"
#include "core/snapshot.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#define P SNAP_PATH_PREFIX
#define E SNAP_PATH_EXACT

struct rule {
	const char *host;
	const char *path;
	enum snap_path_type type;
	const char *backend;
};

/* Builds a snapshot from n rules; backends are named by rule. */
static struct snapshot *build(const struct rule *r, size_t n, const char *def)
{
	struct snapshot_builder *b = snapshot_builder_new();
	cr_assert_not_null(b);
	for (size_t i = 0; i < n; i++) {
		int id = snapshot_add_backend(b, r[i].backend);
		cr_assert_geq(id, 0);
		cr_assert_eq(snapshot_add_route(b, r[i].host, r[i].path, r[i].type, id), 0,
			     "rule %zu (%s %s)", i, r[i].host ? r[i].host : "-", r[i].path);
	}
	if (def)
		cr_assert_eq(snapshot_set_default_backend(b, snapshot_add_backend(b, def)), 0);
	struct snapshot *s = snapshot_build(b, 1);
	cr_assert_not_null(s);
	snapshot_builder_free(b);
	return s;
}

/* Returns the name of the backend chosen for host and path, or NULL. */
static const char *match(const struct snapshot *s, const char *host, const char *path)
{
	const struct snap_backend *be =
		router_match(s, host, host ? strlen(host) : 0, path, strlen(path));
	return be ? be->name : NULL;
}

/* One row of the Kubernetes table with a single rule. */
static void one(enum snap_path_type type, const char *rule, const char *req, bool matches)
{
	struct rule r = { NULL, rule, type, "svc" };
	struct snapshot *s = build(&r, 1, NULL);
	const char *got = match(s, "example.com", req);
	if (matches)
		cr_expect_str_eq(got ? got : "(null)", "svc", "%s %s vs %s",
				 type == E ? "Exact" : "Prefix", rule, req);
	else
		cr_expect_null(got, "%s %s vs %s should not match",
			       type == E ? "Exact" : "Prefix", rule, req);
	snapshot_release(s);
}

/* ---- the Kubernetes documentation's examples table -------------------- */

Test(k8s_table, prefix_root_matches_all)
{
	one(P, "/", "/", true);
	one(P, "/", "/anything", true);
	one(P, "/", "/a/b/c/", true);
}

Test(k8s_table, exact_foo)
{
	one(E, "/foo", "/foo", true);
	one(E, "/foo", "/bar", false);
	one(E, "/foo", "/foo/", false);
}

Test(k8s_table, exact_foo_slash_vs_foo)
{
	one(E, "/foo/", "/foo", false);
	one(E, "/foo/", "/foo/", true);
}

Test(k8s_table, prefix_foo)
{
	one(P, "/foo", "/foo", true);
	one(P, "/foo", "/foo/", true);
}

Test(k8s_table, prefix_foo_slash)
{
	one(P, "/foo/", "/foo", true);
	one(P, "/foo/", "/foo/", true);
}

Test(k8s_table, prefix_element_wise)
{
	one(P, "/aaa/bb", "/aaa/bbb", false);
	one(P, "/aaa/bbb", "/aaa/bbb", true);
	one(P, "/aaa/bbb/", "/aaa/bbb", true);
	one(P, "/aaa/bbb", "/aaa/bbb/", true);
	one(P, "/aaa/bbb", "/aaa/bbb/ccc", true);
	one(P, "/aaa/bbb", "/aaa/bbbxyz", false);
	one(P, "/aaa", "/ccc", false);
	one(P, "/foo", "/foobar", false);
}

Test(k8s_table, longest_prefix_wins)
{
	struct rule r[] = {
		{ NULL, "/", P, "root" },
		{ NULL, "/aaa", P, "aaa" },
		{ NULL, "/aaa/bbb", P, "bbb" },
	};
	struct snapshot *s = build(r, 2, NULL);
	cr_expect_str_eq(match(s, "h", "/aaa/ccc"), "aaa");
	snapshot_release(s);

	s = build(r, 3, NULL);
	cr_expect_str_eq(match(s, "h", "/aaa/bbb"), "bbb");
	cr_expect_str_eq(match(s, "h", "/aaa/bbb/x"), "bbb");
	cr_expect_str_eq(match(s, "h", "/aaa/bb"), "aaa");
	cr_expect_str_eq(match(s, "h", "/ccc"), "root");
	snapshot_release(s);
}

Test(k8s_table, mixed_exact_beats_prefix)
{
	struct rule r[] = {
		{ NULL, "/foo", P, "prefix" },
		{ NULL, "/foo", E, "exact" },
	};
	struct snapshot *s = build(r, 2, NULL);
	cr_expect_str_eq(match(s, "h", "/foo"), "exact");
	cr_expect_str_eq(match(s, "h", "/foo/"), "prefix");
	cr_expect_str_eq(match(s, "h", "/foo/x"), "prefix");
	snapshot_release(s);
}

Test(k8s_table, exact_longer_than_prefix)
{
	struct rule r[] = {
		{ NULL, "/aaa/bbb", E, "exact" },
		{ NULL, "/aaa", P, "prefix" },
	};
	struct snapshot *s = build(r, 2, NULL);
	cr_expect_str_eq(match(s, "h", "/aaa/bbb"), "exact");
	cr_expect_str_eq(match(s, "h", "/aaa/bbb/"), "prefix");
	cr_expect_str_eq(match(s, "h", "/aaa/bbbb"), "prefix");
	snapshot_release(s);
}

/* ---- hosts --------------------------------------------------------------- */

static const struct rule host_rules[] = {
	{ "foo.bar.com", "/", P, "foo-bar" },
	{ "*.foo.com", "/", P, "wild-foo" },
	{ "exact.foo.com", "/", P, "exact-foo" },
	{ "bar.com", "/api", P, "bar-api" },
	{ NULL, "/", P, "any" },
};

Test(hosts, exact_host)
{
	struct snapshot *s = build(host_rules, 5, NULL);
	cr_expect_str_eq(match(s, "foo.bar.com", "/x"), "foo-bar");
	cr_expect_str_eq(match(s, "other.com", "/x"), "any");
	snapshot_release(s);
}

Test(hosts, wildcard_one_label)
{
	struct snapshot *s = build(host_rules, 4, NULL);
	cr_expect_str_eq(match(s, "bar.foo.com", "/"), "wild-foo");
	cr_expect_null(match(s, "baz.bar.foo.com", "/"));
	cr_expect_null(match(s, "foo.com", "/"));
	cr_expect_null(match(s, ".foo.com", "/"));
	snapshot_release(s);
}

Test(hosts, exact_beats_wildcard)
{
	struct snapshot *s = build(host_rules, 5, NULL);
	cr_expect_str_eq(match(s, "exact.foo.com", "/"), "exact-foo");
	cr_expect_str_eq(match(s, "other.foo.com", "/"), "wild-foo");
	snapshot_release(s);
}

Test(hosts, case_insensitive)
{
	struct snapshot *s = build(host_rules, 4, NULL);
	cr_expect_str_eq(match(s, "FOO.Bar.COM", "/"), "foo-bar");
	cr_expect_str_eq(match(s, "BAZ.FOO.COM", "/"), "wild-foo");
	snapshot_release(s);

	struct rule r = { "Mixed.Example.COM", "/", P, "mixed" };
	s = build(&r, 1, NULL);
	cr_expect_str_eq(match(s, "mixed.example.com", "/"), "mixed");
	snapshot_release(s);
}

Test(hosts, port_and_trailing_dot_ignored)
{
	struct snapshot *s = build(host_rules, 5, NULL);
	cr_expect_str_eq(match(s, "foo.bar.com:8080", "/"), "foo-bar");
	cr_expect_str_eq(match(s, "foo.bar.com.", "/"), "foo-bar");
	cr_expect_str_eq(match(s, "foo.bar.com.:443", "/"), "foo-bar");
	cr_expect_str_eq(match(s, "x.foo.com:80", "/"), "wild-foo");
	cr_expect_str_eq(match(s, "[::1]:8080", "/"), "any");
	cr_expect_str_eq(match(s, "[::1]", "/"), "any");
	cr_expect_str_eq(match(s, "10.0.0.1:80", "/"), "any");
	snapshot_release(s);
}

Test(hosts, any_host_fallback_only_without_host_entry)
{
	struct snapshot *s = build(host_rules, 5, "default");
	/* bar.com exists: no fallback to the any-host rules */
	cr_expect_str_eq(match(s, "bar.com", "/api/v1"), "bar-api");
	cr_expect_str_eq(match(s, "bar.com", "/other"), "default");
	cr_expect_str_eq(match(s, "unknown.org", "/other"), "any");
	cr_expect_str_eq(match(s, NULL, "/other"), "any");
	cr_expect_str_eq(match(s, "", "/other"), "any");
	snapshot_release(s);
}

Test(hosts, default_backend_and_404)
{
	struct rule r = { "a.com", "/app", P, "app" };
	struct snapshot *s = build(&r, 1, "default");
	cr_expect_str_eq(match(s, "a.com", "/app/x"), "app");
	cr_expect_str_eq(match(s, "a.com", "/other"), "default");
	cr_expect_str_eq(match(s, "b.com", "/app"), "default");
	snapshot_release(s);

	s = build(&r, 1, NULL);
	cr_expect_null(match(s, "a.com", "/other"));
	cr_expect_null(match(s, "b.com", "/app"));
	snapshot_release(s);

	s = build(NULL, 0, NULL);
	cr_expect_null(match(s, "a.com", "/"));
	snapshot_release(s);
}

Test(hosts, first_added_wins)
{
	struct snapshot_builder *b = snapshot_builder_new();
	int one = snapshot_add_backend(b, "one");
	int two = snapshot_add_backend(b, "two");
	cr_assert_eq(snapshot_add_route(b, "a.com", "/x", P, one), 0);
	cr_expect_eq(snapshot_add_route(b, "a.com", "/x", P, two), -EEXIST);
	cr_expect_eq(snapshot_add_route(b, "A.COM", "/x/", P, two), -EEXIST);
	cr_expect_eq(snapshot_add_route(b, "a.com", "/x", E, two), 0);
	cr_expect_eq(snapshot_add_route(b, "b.com", "/x", P, two), 0);
	cr_expect_eq(snapshot_add_route(b, NULL, "/x", P, one), 0);
	cr_expect_eq(snapshot_add_route(b, "", "/x", P, two), -EEXIST);
	cr_expect_eq(snapshot_set_default_backend(b, one), 0);
	cr_expect_eq(snapshot_set_default_backend(b, two), -EEXIST);
	struct snapshot *s = snapshot_build(b, 1);
	snapshot_builder_free(b);
	cr_expect_str_eq(match(s, "a.com", "/x/y"), "one");
	cr_expect_str_eq(match(s, "a.com", "/x"), "two");
	cr_expect_str_eq(match(s, "b.com", "/x"), "two");
	cr_expect_str_eq(match(s, "c.com", "/x"), "one");
	cr_expect_str_eq(s->default_backend->name, "one");
	snapshot_release(s);
}

Test(hosts, invalid_rules_rejected)
{
	struct snapshot_builder *b = snapshot_builder_new();
	int id = snapshot_add_backend(b, "svc");
	cr_expect_eq(snapshot_add_route(b, "a..com", "/", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, ".a.com", "/", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "a.*.com", "/", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "*", "/", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "*.", "/", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "**.a.com", "/", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "a.com:80", "/", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "a b.com", "/", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "a.com", "foo", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "a.com", "", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "a.com", "/../x", P, id), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "a.com", "/", P, 7), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "a.com", "/", P, -1), -EINVAL);
	cr_expect_eq(snapshot_add_route(b, "a.com", "/", P, id), 0);
	cr_expect_eq(snapshot_add_route(b, "*.a.com", "/", P, id), 0);
	snapshot_builder_free(b);
}

Test(hosts, rule_paths_sorted)
{
	struct rule r[] = {
		{ "h.com", "/a", P, "a" },
		{ "h.com", "/a/b/c", P, "abc" },
		{ "h.com", "/a/b", E, "ab-exact" },
		{ "h.com", "/a/b", P, "ab" },
	};
	struct snapshot *s = build(r, 4, NULL);
	cr_assert_eq(s->hosts_cap & (s->hosts_cap - 1), 0);
	const struct snap_host *h = NULL;
	for (uint32_t i = 0; i < s->hosts_cap; i++)
		if (s->hosts[i])
			h = s->hosts[i];
	cr_assert_not_null(h);
	cr_assert_eq(h->npaths, 4);
	cr_expect_str_eq(h->paths[0].path, "/a/b/c");
	cr_expect_str_eq(h->paths[1].path, "/a/b");
	cr_expect_eq(h->paths[1].type, E);
	cr_expect_eq(h->paths[2].type, P);
	cr_expect_str_eq(h->paths[3].path, "/a");
	snapshot_release(s);
}

/* ---- normalisation ------------------------------------------------------- */

struct norm_case {
	const char *in;
	const char *out; /* NULL: -EINVAL expected */
};

static const struct norm_case norm_cases[] = {
	{ "/", "/" },
	{ "/foo", "/foo" },
	{ "/foo/", "/foo/" },
	{ "/%7Efoo", "/~foo" },
	{ "/%41%62%2d%5f%2E", "/Ab-_." },
	{ "/a%2fb", "/a%2Fb" },
	{ "/a%2Fb", "/a%2Fb" },
	{ "/a%20b", "/a%20b" },
	{ "/a%3fb", "/a%3Fb" },
	{ "/%G1", NULL },
	{ "/%1", NULL },
	{ "/abc%", NULL },
	{ "/a/./b", "/a/b" },
	{ "/a/../b", "/b" },
	{ "/a/b/..", "/a/" },
	{ "/a/b/.", "/a/b/" },
	{ "/a/b/../../c/", "/c/" },
	{ "/a/%2e%2e/b", "/b" },
	{ "/a/%2E/b", "/a/b" },
	{ "/%2e%2e/", NULL },
	{ "/..", NULL },
	{ "/../a", NULL },
	{ "/a/../..", NULL },
	{ "/a/..", "/" },
	{ "/...", "/..." },
	{ "/..a/.b", "/..a/.b" },
	{ "/foo?x=1", "/foo" },
	{ "/foo?x=/../..", "/foo" },
	{ "/foo#frag", "/foo" },
	{ "/?q", "/" },
	{ "//a///b//", "/a/b/" },
	{ "//", "/" },
	{ "http://example.com/a/b?c", "/a/b" },
	{ "HTTPS://example.com:8443//x/../y", "/y" },
	{ "http://example.com", "/" },
	{ "http://example.com?q=1", "/" },
	{ "*", NULL },
	{ "", NULL },
	{ "foo/bar", NULL },
	{ "?x", NULL },
	{ "/a b", NULL },
};

Test(normalize, table)
{
	char out[256];

	for (size_t i = 0; i < sizeof(norm_cases) / sizeof(norm_cases[0]); i++) {
		const struct norm_case *c = &norm_cases[i];
		int n = router_normalize_path(c->in, strlen(c->in), out, sizeof(out));
		if (!c->out) {
			cr_expect_eq(n, -EINVAL, "'%s' -> %d, want -EINVAL", c->in, n);
			continue;
		}
		cr_expect_geq(n, 0, "'%s' -> %d", c->in, n);
		if (n >= 0)
			cr_expect(n == (int)strlen(c->out) && !memcmp(out, c->out, (size_t)n),
				  "'%s' -> '%.*s', want '%s'", c->in, n, out, c->out);
	}
}

Test(normalize, no_space)
{
	char out[4];
	cr_expect_eq(router_normalize_path("/abcdef", 7, out, sizeof(out)), -ENOSPC);
	cr_expect_eq(router_normalize_path("/a%2F", 5, out, sizeof(out)), -ENOSPC);
	cr_expect_eq(router_normalize_path("/abc", 4, out, sizeof(out)), 4);
	cr_expect_eq(memcmp(out, "/abc", 4), 0);
	/* cap == len always suffices */
	char big[13];
	cr_expect_eq(router_normalize_path("/aaaaaaa/../b", 13, big, sizeof(big)), 2);
	cr_expect_eq(memcmp(big, "/b", 2), 0);
	cr_expect_eq(router_normalize_path("/a/b/.", 6, big, 6), 5);
	cr_expect_eq(memcmp(big, "/a/b/", 5), 0);
	cr_expect_eq(router_normalize_path("/.", 2, big, 2), 1);
	cr_expect_eq(router_normalize_path("/", 1, big, 0), -ENOSPC);
}

Test(normalize, length_bounded_input)
{
	char out[64];
	/* only the first len bytes are read */
	cr_expect_eq(router_normalize_path("/abc/def", 4, out, sizeof(out)), 4);
	cr_expect_eq(memcmp(out, "/abc", 4), 0);
}

Test(normalize, then_match)
{
	struct rule r[] = {
		{ NULL, "/~user", P, "user" },
		{ NULL, "/public", P, "public" },
	};
	struct snapshot *s = build(r, 2, NULL);
	char out[64];
	int n = router_normalize_path("/%7euser/x", 10, out, sizeof(out));
	cr_assert_gt(n, 0);
	cr_expect_str_eq(router_match(s, "h", 1, out, (size_t)n)->name, "user");
	n = router_normalize_path("/public/../secret", 17, out, sizeof(out));
	cr_assert_gt(n, 0);
	cr_expect_null(router_match(s, "h", 1, out, (size_t)n));
	snapshot_release(s);
}

Test(router, host_name_without_port)
{
	cr_expect_eq(router_host_name_len("a.example.com:8080", 18), 13);
	cr_expect_eq(router_host_name_len("a.example.com", 13), 13);
	/* An IPv6 literal keeps its brackets and its colons. */
	cr_expect_eq(router_host_name_len("[::1]:8443", 10), 5);
	cr_expect_eq(router_host_name_len("[2001:db8::1]", 13), 13);
	cr_expect_eq(router_host_name_len("", 0), 0);
}
