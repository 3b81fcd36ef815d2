/* k8s_test.h - helpers shared by the k8s unit tests (header only). */
#ifndef RINGRESS_K8S_TEST_H
#define RINGRESS_K8S_TEST_H

#include "core/log.h"
#include "core/router.h"
#include "core/snapshot.h"
#include "k8s/manifests.h"
#include "k8s/store.h"
#include "k8s/translate.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define K8S_TEST_CONTROLLER "ringress.io/controller"
#define K8S_TEST_CLASS "ringress"

/* Path of a file under tests/fixtures, found through $RINGRESS_ROOT (default
 * "."). Returns a static buffer: use before the next call. */
static inline const char *fixture(const char *rel)
{
	static char buf[4096];
	const char *root = getenv("RINGRESS_ROOT");

	snprintf(buf, sizeof(buf), "%s/tests/fixtures/%s", root && *root ? root : ".", rel);
	return buf;
}

/* Keeps the expected warnings of the tests out of the output. */
static inline void quiet_logs(void)
{
	log_threshold = LOG_ERROR;
}

/* Loads a fixture into store, asserting success. */
static inline void load_fixture(struct k8s_store *s, const char *rel)
{
	int r = k8s_manifests_load(fixture(rel), s, NULL);
	cr_assert_eq(r, 0, "loading %s: %d", rel, r);
}

/* Translates store with the test classes and builds generation 1. */
static inline struct snapshot *build(const struct k8s_store *s, bool without_class,
				     struct k8s_translate_stats *st)
{
	struct k8s_class_options o = {.ingress_class = K8S_TEST_CLASS,
				      .controller_class = K8S_TEST_CONTROLLER,
				      .watch_without_class = without_class};
	struct snapshot_builder *b = k8s_translate(s, &o, st);
	cr_assert_not_null(b);
	struct snapshot *snap = snapshot_build(b, 1);
	snapshot_builder_free(b);
	cr_assert_not_null(snap);
	return snap;
}

/* Routes host + raw path like the data plane does; returns the backend or
 * NULL (404). */
static inline const struct snap_backend *route(const struct snapshot *s, const char *host,
					       const char *target)
{
	char path[1024];
	int n = router_normalize_path(target, strlen(target), path, sizeof(path));

	cr_assert_geq(n, 0, "normalising %s", target);
	return router_match(s, host, strlen(host), path, (size_t)n);
}

/* Name of the backend chosen for host + path, or "404". */
static inline const char *route_name(const struct snapshot *s, const char *host,
				     const char *target)
{
	const struct snap_backend *b = route(s, host, target);
	return b ? b->name : "404";
}

/* True when backend b has an endpoint whose text is ep ("10.0.0.1:80"). */
static inline bool has_endpoint(const struct snap_backend *b, const char *ep)
{
	for (uint32_t i = 0; b && i < b->nendpoints; i++)
		if (!strcmp(b->endpoints[i].text, ep))
			return true;
	return false;
}

#endif
