/* controller.c - the control thread for --manifests PATH, and the entry
 * point of both sources (the API server source lives in cluster.c).
 *
 * Start-up loads PATH synchronously and publishes generation 1 when it
 * parses. The thread then waits on inotify (PATH's directory, or the parent
 * directory of a file PATH filtered to that name and to kubelet's "..data"
 * ConfigMap swaps) and on an eventfd used to stop it. Changes are debounced;
 * a reload that parses is translated and published with the next
 * generation, a reload that fails keeps the last good configuration.
 * Publishing happens on the caller's thread for the first snapshot and on
 * the control thread afterwards. */
#include "k8s/controller.h"

#include "core/log.h"
#include "core/snapshot.h"
#include "k8s/cluster.h"
#include "k8s/manifests.h"
#include "k8s/store.h"
#include "k8s/translate.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TAG "manifests"
#define DEFAULT_DEBOUNCE_MS 200
#define REWATCH_MS 1000
#define WATCH_MASK                                                                         \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |             \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB | IN_ONLYDIR)

struct k8s_controller {
	struct k8s_cluster *cluster; /* API server source; NULL with --manifests */
	char *path;
	char *watch_dir;  /* PATH, or its parent when PATH is a file */
	char *watch_name; /* NULL, or PATH's base name when PATH is a file */
	char *ingress_class, *controller_class;
	struct k8s_class_options cls;
	uint32_t debounce_ms;
	k8s_publish_fn publish;
	void *arg;

	struct k8s_store *store; /* last good objects */
	uint64_t generation;     /* last published; 0 = none */
	int ifd, wd, stop_fd;
	pthread_t thread;
	bool started;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Loads, translates and publishes. Returns 0 or a -errno (logged). */
static int reload(struct k8s_controller *c)
{
	struct k8s_manifests_stats ms;
	struct k8s_translate_stats ts;
	struct k8s_store *store = k8s_store_new();
	struct snapshot_builder *b = NULL;
	struct snapshot *snap;
	int ret;

	if (!store)
		return -ENOMEM;
	ret = k8s_manifests_load(c->path, store, &ms);
	if (ret < 0)
		goto err;
	b = k8s_translate(store, &c->cls, &ts);
	if (!b) {
		ret = -ENOMEM;
		goto err;
	}
	snap = snapshot_build(b, c->generation + 1);
	snapshot_builder_free(b);
	if (!snap) {
		ret = -ENOMEM;
		goto err;
	}
	c->generation++;
	k8s_store_free(c->store);
	c->store = store;
	log_info(TAG,
		 "generation %llu: %u files, %u objects (%u skipped); %u ingresses (%u of other "
		 "classes), %u routes, %u backends (%u without endpoints)",
		 (unsigned long long)c->generation, ms.files, ms.objects, ms.skipped,
		 ts.ingresses, ts.ignored, ts.routes, ts.backends, ts.unresolved);
	c->publish(snap, c->arg);
	return 0;

err:
	k8s_store_free(store);
	/* Why, once more: out of memory in the translation or the build has
	 * no line of its own. */
	if (c->generation)
		log_warn(TAG, "keeping last good configuration (generation %llu): %s",
			 (unsigned long long)c->generation, strerror(-ret));
	else
		log_error(TAG, "no good configuration yet (%s): nothing is served until %s loads",
			  strerror(-ret), c->path);
	return ret;
}

static void add_watch(struct k8s_controller *c)
{
	c->wd = inotify_add_watch(c->ifd, c->watch_dir, WATCH_MASK);
	if (c->wd < 0)
		log_debug(TAG, "inotify_add_watch %s: %s", c->watch_dir, strerror(errno));
}

/* Drains inotify; returns true when an event concerns our files. */
static bool drain_events(struct k8s_controller *c)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool relevant = false;

	for (;;) {
		ssize_t n = read(c->ifd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
				/* The directory itself went away: watch again later. */
				if (ev->wd == c->wd && (ev->mask & IN_IGNORED)) {
					log_warn(TAG, "%s: directory removed or moved",
						 c->watch_dir);
					c->wd = -1;
				}
				relevant = true;
				continue;
			}
			if (ev->mask & IN_Q_OVERFLOW) {
				relevant = true;
				continue;
			}
			if (!c->watch_name || (ev->len && (!strcmp(ev->name, c->watch_name) ||
							   !strncmp(ev->name, "..", 2))))
				relevant = true;
		}
	}
	return relevant;
}

static void *control_thread(void *arg)
{
	struct k8s_controller *c = arg;
	int64_t deadline = -1; /* when to reload; -1 = nothing pending */

	pthread_setname_np(pthread_self(), "control");
	for (;;) {
		struct pollfd fds[2] = {{.fd = c->stop_fd, .events = POLLIN},
					{.fd = c->ifd, .events = POLLIN}};
		int timeout = -1;
		int64_t now = now_ms();

		if (deadline >= 0)
			timeout = deadline > now ? (int)(deadline - now) : 0;
		if (c->wd < 0 && (timeout < 0 || timeout > REWATCH_MS))
			timeout = REWATCH_MS;
		int n = poll(fds, 2, timeout);
		if (n < 0 && errno != EINTR) {
			log_error(TAG, "poll: %s", strerror(errno));
			break;
		}
		if (fds[0].revents)
			break;
		if (n > 0 && fds[1].revents && drain_events(c))
			deadline = now_ms() + c->debounce_ms;
		if (c->wd < 0) {
			add_watch(c);
			if (c->wd >= 0) {
				log_info(TAG, "%s: watching again", c->watch_dir);
				deadline = now_ms() + c->debounce_ms;
			}
		}
		if (deadline >= 0 && now_ms() >= deadline) {
			deadline = -1;
			reload(c);
		}
	}
	return NULL;
}

static void controller_free(struct k8s_controller *c)
{
	if (c->ifd >= 0)
		close(c->ifd);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	k8s_store_free(c->store);
	free(c->path);
	free(c->watch_dir);
	free(c->watch_name);
	free(c->ingress_class);
	free(c->controller_class);
	free(c);
}

static char *strdup_or_null(const char *s, bool *fail)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		*fail = true;
	return d;
}

struct k8s_controller *k8s_controller_start(const struct k8s_options *o, k8s_publish_fn publish,
					    void *arg)
{
	struct k8s_controller *c;
	struct stat st;
	bool oom = false;
	int ret;

	if (!o->manifests || !*o->manifests) {
		c = calloc(1, sizeof(*c));
		if (!c)
			goto err_oom;
		c->ifd = c->stop_fd = c->wd = -1;
		c->cluster = k8s_cluster_start(o, publish, arg);
		if (!c->cluster) {
			free(c);
			return NULL;
		}
		return c;
	}
	if (stat(o->manifests, &st) < 0) {
		log_error("k8s", "--manifests %s: %s", o->manifests, strerror(errno));
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto err_oom;
	c->ifd = c->stop_fd = c->wd = -1;
	c->publish = publish;
	c->arg = arg;
	c->debounce_ms = o->debounce_ms ? o->debounce_ms : DEFAULT_DEBOUNCE_MS;
	c->path = strdup_or_null(o->manifests, &oom);
	c->ingress_class = strdup_or_null(o->ingress_class, &oom);
	c->controller_class = strdup_or_null(o->controller_class, &oom);
	c->cls = (struct k8s_class_options){.ingress_class = c->ingress_class,
					    .controller_class = c->controller_class,
					    .watch_without_class = o->watch_without_class,
					    .default_ssl_certificate = o->default_ssl_certificate};
	if (S_ISDIR(st.st_mode)) {
		c->watch_dir = strdup_or_null(o->manifests, &oom);
	} else {
		char *a = strdup_or_null(o->manifests, &oom), *b = strdup_or_null(o->manifests, &oom);
		if (a && b) {
			c->watch_dir = strdup_or_null(dirname(a), &oom);
			c->watch_name = strdup_or_null(basename(b), &oom);
		}
		free(a);
		free(b);
	}
	if (oom)
		goto err_free;

	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (c->stop_fd < 0 || c->ifd < 0) {
		log_error("k8s", "--manifests %s: %s", o->manifests, strerror(errno));
		goto err_free;
	}
	/* Watch before the first load so that no change is missed. */
	add_watch(c);
	if (c->wd < 0) {
		log_error("k8s", "--manifests %s: cannot watch %s: %s", o->manifests, c->watch_dir,
			  strerror(errno));
		goto err_free;
	}
	if (reload(c) == -ENOMEM)
		goto err_free;

	ret = pthread_create(&c->thread, NULL, control_thread, c);
	if (ret) {
		log_error("k8s", "pthread_create: %s", strerror(ret));
		goto err_free;
	}
	c->started = true;
	log_info(TAG, "watching %s%s%s (debounce %u ms)", c->watch_dir,
		 c->watch_name ? " for " : "", c->watch_name ? c->watch_name : "", c->debounce_ms);
	return c;

err_free:
	controller_free(c);
	return NULL;
err_oom:
	log_error("k8s", "out of memory");
	return NULL;
}

void k8s_controller_stop(struct k8s_controller *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	k8s_cluster_stop(c->cluster);
	if (c->started) {
		ssize_t w = write(c->stop_fd, &one, sizeof(one));
		(void)w;
		pthread_join(c->thread, NULL);
	}
	controller_free(c);
}
