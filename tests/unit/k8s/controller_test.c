/* controller_test.c - start, publish, reload on change (inotify), stop. */
#include "k8s/controller.h"
#include "k8s_test.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

struct rec {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned n;
	struct snapshot *last;
};

static struct rec rec = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL};
static char dir[64];

static void publish(struct snapshot *s, void *arg)
{
	struct rec *r = arg;
	pthread_mutex_lock(&r->mu);
	snapshot_release(r->last);
	r->last = s;
	r->n++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Waits until n publishes happened or ms elapsed; returns the count. */
static unsigned wait_for(unsigned n, int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&rec.mu);
	while (rec.n < n && pthread_cond_timedwait(&rec.cv, &rec.mu, &ts) == 0)
		;
	unsigned got = rec.n;
	pthread_mutex_unlock(&rec.mu);
	return got;
}

static const char *last_route(const char *host)
{
	pthread_mutex_lock(&rec.mu);
	const char *name = rec.last ? route_name(rec.last, host, "/") : "none";
	pthread_mutex_unlock(&rec.mu);
	return name;
}

static void write_file(const char *name, const char *text)
{
	char path[128], tmp[140];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	/* Like editors and kubectl cp: write aside, then rename over. */
	FILE *f = fopen(tmp, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	cr_assert_eq(rename(tmp, path), 0);
}

static const char *ingress(const char *host, const char *svc)
{
	static char buf[1024];
	snprintf(buf, sizeof(buf),
		 "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: i}\n"
		 "spec:\n  rules:\n  - host: %s\n    http:\n      paths:\n      - path: /\n"
		 "        pathType: Prefix\n"
		 "        backend: {service: {name: %s, port: {number: 80}}}\n",
		 host, svc);
	return buf;
}

static void setup(void)
{
	quiet_logs();
	snprintf(dir, sizeof(dir), "/tmp/ringress-ctl-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	rec.n = 0;
	rec.last = NULL;
}

static void teardown(void)
{
	char cmd[128];
	snapshot_release(rec.last);
	rec.last = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(controller, .init = setup, .fini = teardown);

static struct k8s_options opts(const char *path)
{
	return (struct k8s_options){.manifests = path,
				    .ingress_class = K8S_TEST_CLASS,
				    .controller_class = K8S_TEST_CONTROLLER,
				    .watch_without_class = true,
				    .debounce_ms = 50};
}

Test(controller, missing_path_returns_null)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/nope", dir);
	struct k8s_options o = opts(path);
	cr_assert_null(k8s_controller_start(&o, publish, &rec));
	k8s_controller_stop(NULL);
}

Test(controller, directory_reload_and_keep_last_good)
{
	write_file("a.yaml", ingress("one.test", "one"));
	struct k8s_options o = opts(dir);
	struct k8s_controller *c = k8s_controller_start(&o, publish, &rec);
	cr_assert_not_null(c);
	cr_assert_eq(wait_for(1, 0), 1);
	cr_assert_eq(rec.last->generation, 1);
	cr_assert_str_eq(last_route("one.test"), "default/one:80");

	write_file("a.yaml", ingress("two.test", "two"));
	cr_assert_eq(wait_for(2, 3000), 2);
	cr_assert_eq(rec.last->generation, 2);
	cr_assert_str_eq(last_route("two.test"), "default/two:80");
	cr_assert_str_eq(last_route("one.test"), "404");

	/* A broken file: nothing is published, generation 2 keeps serving. */
	write_file("b.yaml", "kind: [broken\n");
	cr_assert_eq(wait_for(3, 500), 2);
	cr_assert_str_eq(last_route("two.test"), "default/two:80");

	/* Fixing it publishes generation 3. */
	write_file("b.yaml", ingress("three.test", "three"));
	cr_assert_eq(wait_for(3, 3000), 3);
	cr_assert_eq(rec.last->generation, 3);
	k8s_controller_stop(c);
}

Test(controller, single_file_and_broken_start)
{
	char path[128];
	write_file("only.yaml", "kind: [broken\n");
	write_file("other.yaml", ingress("other.test", "other"));
	snprintf(path, sizeof(path), "%s/only.yaml", dir);
	struct k8s_options o = opts(path);
	struct k8s_controller *c = k8s_controller_start(&o, publish, &rec);
	cr_assert_not_null(c); /* starts, but publishes nothing */
	cr_assert_eq(wait_for(1, 300), 0);

	/* Changes to other files of the directory are not ours. */
	write_file("other.yaml", ingress("other2.test", "other"));
	cr_assert_eq(wait_for(1, 300), 0);

	write_file("only.yaml", ingress("only.test", "only"));
	cr_assert_eq(wait_for(1, 3000), 1);
	cr_assert_eq(rec.last->generation, 1);
	cr_assert_str_eq(last_route("only.test"), "default/only:80");
	cr_assert_str_eq(last_route("other.test"), "404");

	/* In-place write (no rename) is seen too. */
	FILE *f = fopen(path, "w");
	fputs(ingress("again.test", "again"), f);
	fclose(f);
	cr_assert_eq(wait_for(2, 3000), 2);
	cr_assert_str_eq(last_route("again.test"), "default/again:80");
	k8s_controller_stop(c);
}
