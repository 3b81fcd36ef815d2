/* cluster.c - the API server source: connection, informers, debounced
 * rebuilds, status and leader election, all on one control thread.
 * See cluster.h. */
#include "k8s/cluster.h"

#include "core/log.h"
#include "core/snapshot.h"
#include "k8s/apiclient.h"
#include "k8s/informer.h"
#include "k8s/kubeconfig.h"
#include "k8s/leader.h"
#include "k8s/status.h"
#include "k8s/store.h"
#include "k8s/translate.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define TAG "k8s"
#define MAX_INFORMERS 6
#define IDLE_WAKE_MS 1000
#define STATUS_SHUTDOWN_MS 5000
#define RELEASE_SHUTDOWN_MS 3000

struct k8s_cluster {
	struct k8s_conn_config conn;
	struct k8s_api *api;
	struct k8s_store *store;
	struct k8s_informer *inf[MAX_INFORMERS];
	size_t ninf;
	struct k8s_status *status;
	struct k8s_leader *leader;

	char *ingress_class, *controller_class;
	struct k8s_class_options cls;
	uint32_t debounce_ms;
	k8s_publish_fn publish;
	void *arg;

	uint64_t generation; /* last published, 0: none yet */
	struct snapshot *last; /* a reference to the last published, for endpoint-only rebuilds */
	bool dirty;          /* the store changed since the last rebuild */
	bool dirty_slow;     /* ... by something other than EndpointSlices */
	bool all_synced;
	char *changed[256]; /* Services whose EndpointSlices changed since the last rebuild */
	size_t nchanged;
	bool changed_all;
	int64_t first_change; /* when the store became dirty */

	int stop_fd;
	pthread_t thread;
	bool started;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Remembers the Service ("ns/name") of a changed EndpointSlice, so that an
 * endpoint-only rebuild resolves just its backends; too many, or one
 * without the label, and every backend is resolved again. */
static void note_service(struct k8s_cluster *c, const cJSON *obj)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	const cJSON *ns = cJSON_GetObjectItemCaseSensitive(m, "namespace");
	const cJSON *svc = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(m, "labels"), "kubernetes.io/service-name");
	char key[512];

	if (c->changed_all)
		return;
	if (!obj || !cJSON_IsString(ns) || !cJSON_IsString(svc) ||
	    c->nchanged == sizeof(c->changed) / sizeof(c->changed[0])) {
		c->changed_all = true;
		return;
	}
	snprintf(key, sizeof(key), "%s/%s", ns->valuestring, svc->valuestring);
	for (size_t i = 0; i < c->nchanged; i++)
		if (!strcmp(c->changed[i], key))
			return;
	if (!(c->changed[c->nchanged] = strdup(key)))
		c->changed_all = true;
	else
		c->nchanged++;
}

static void changed_clear(struct k8s_cluster *c)
{
	for (size_t i = 0; i < c->nchanged; i++)
		free(c->changed[i]);
	c->nchanged = 0;
	c->changed_all = false;
}

static void on_changed(void *arg, const struct k8s_kind *kind, const cJSON *obj)
{
	struct k8s_cluster *c = arg;

	if (!c->dirty) {
		c->dirty = true;
		c->first_change = mono_ms();
	}
	if (kind != &k8s_kind_endpointslice)
		c->dirty_slow = true;
	else
		note_service(c, obj);
}

static void on_leader(void *arg, bool leader)
{
	struct k8s_cluster *c = arg;

	if (c->status)
		k8s_status_set_leader(c->status, leader);
}

/* When the pending rebuild is due: a burst is coalesced for at most the
 * debounce (counted from its first change, so a steady stream of events
 * cannot postpone it forever); endpoint-only changes go faster. */
static int64_t rebuild_due(const struct k8s_cluster *c)
{
	uint32_t d = c->debounce_ms;

	if (!c->generation)
		return c->first_change; /* first snapshot: as soon as synced */
	if (!c->dirty_slow && d > K8S_ENDPOINT_DEBOUNCE_MS)
		d = K8S_ENDPOINT_DEBOUNCE_MS;
	return c->first_change + d;
}

static void rebuild(struct k8s_cluster *c)
{
	struct k8s_translate_stats ts;
	struct snapshot_builder *b;
	struct snapshot *snap;
	int64_t t0 = mono_ms();

	bool endpoints_only = !c->dirty_slow && c->last;
	c->dirty = c->dirty_slow = false;
	if (endpoints_only) {
		/* Only EndpointSlices changed: resolve the backends again and share
		 * the previous routes (much faster than a full translation). */
		b = k8s_translate_endpoints(c->store, c->last,
					    c->changed_all ? NULL : (const char *const *)c->changed,
					    c->nchanged, &ts);
		snap = b ? snapshot_rebuild_endpoints(c->last, b, c->generation + 1) : NULL;
		snapshot_builder_free(b);
		if (snap) {
			c->generation++;
			log_info(TAG, "generation %llu: endpoints of %u backends updated (routes shared), built in %lld ms",
				 (unsigned long long)c->generation, ts.backends,
				 (long long)(mono_ms() - t0));
			goto publish;
		}
		log_warn(TAG, "endpoint-only update failed: translating everything");
	}
	b = k8s_translate(c->store, &c->cls, &ts);
	if (!b) {
		log_error(TAG, "translation failed (out of memory): keeping generation %llu",
			  (unsigned long long)c->generation);
		return;
	}
	snap = snapshot_build(b, c->generation + 1);
	snapshot_builder_free(b);
	if (!snap) {
		log_error(TAG, "snapshot build failed (out of memory): keeping generation %llu",
			  (unsigned long long)c->generation);
		return;
	}
	c->generation++;
	log_info(TAG,
		 "generation %llu: %zu objects; %u ingresses (%u of other classes), %u routes, %u "
		 "backends (%u without endpoints), built in %lld ms",
		 (unsigned long long)c->generation, k8s_store_count(c->store), ts.ingresses,
		 ts.ignored, ts.routes, ts.backends, ts.unresolved, (long long)(mono_ms() - t0));
publish:
	changed_clear(c);
	snapshot_release(c->last);
	c->last = snapshot_acquire(snap);
	c->publish(snap, c->arg);
	if (c->status)
		k8s_status_kick(c->status);
}

static void shutdown_status(struct k8s_cluster *c)
{
	int64_t deadline;

	if (c->status) {
		k8s_status_shutdown(c->status);
		deadline = mono_ms() + STATUS_SHUTDOWN_MS;
		while (k8s_status_busy(c->status) && mono_ms() < deadline)
			k8s_api_run(c->api, 100, -1);
		if (k8s_status_busy(c->status))
			log_warn(TAG, "shutdown: status updates still in flight, abandoned");
	}
	if (c->leader) {
		k8s_leader_release(c->leader);
		deadline = mono_ms() + RELEASE_SHUTDOWN_MS;
		while (k8s_leader_busy(c->leader) && mono_ms() < deadline)
			k8s_api_run(c->api, 100, -1);
	}
}

static void *control_thread(void *arg)
{
	struct k8s_cluster *c = arg;

	pthread_setname_np(pthread_self(), "control");
	for (;;) {
		int64_t now = mono_ms(), next = now + IDLE_WAKE_MS, t;
		bool synced = true;

		for (size_t i = 0; i < c->ninf; i++) {
			t = k8s_informer_tick(c->inf[i], now);
			if (t >= 0 && t < next)
				next = t;
			synced &= k8s_informer_synced(c->inf[i]);
		}
		if (synced && !c->all_synced) {
			c->all_synced = true;
			log_info(TAG, "every kind listed: publishing the first configuration");
			if (!c->dirty) { /* nothing at all in the cluster */
				c->dirty = true;
				c->first_change = now;
			}
		}
		if (c->all_synced && c->dirty) {
			t = rebuild_due(c);
			if (t <= now) {
				rebuild(c);
				continue; /* recompute the timers */
			}
			if (t < next)
				next = t;
		}
		if (c->leader && (t = k8s_leader_tick(c->leader, now)) >= 0 && t < next)
			next = t;
		if (c->status && (t = k8s_status_tick(c->status, now)) >= 0 && t < next)
			next = t;
		if (k8s_api_run(c->api, (int)(next > now ? next - now : 0), c->stop_fd))
			break;
	}
	log_info(TAG, "control thread stopping");
	shutdown_status(c);
	return NULL;
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d = s && *s ? strdup(s) : NULL;
	if (s && *s && !d)
		*oom = true;
	return d;
}

/* Fills c->conn from the options. Returns 0 or -1 (logged). */
static int resolve_connection(struct k8s_cluster *c, const struct k8s_options *o)
{
	char err[512] = "";
	const char *dir = o->serviceaccount_dir ? o->serviceaccount_dir : K8S_SERVICEACCOUNT_DIR;
	int r;

	if (o->kubeconfig && *o->kubeconfig) {
		r = k8s_kubeconfig_load(o->kubeconfig, o->kube_context, &c->conn, err, sizeof(err));
	} else if (o->apiserver_host && *o->apiserver_host) {
		/* A bare server: use the service account's credentials when present
		 * (a pod talking to another address), else none (kubectl proxy). */
		char path[4096];
		k8s_conn_config_init(&c->conn);
		r = 0;
		snprintf(path, sizeof(path), "%s/token", dir);
		if (access(path, R_OK) == 0 && !(c->conn.token_file = strdup(path)))
			r = -ENOMEM;
		snprintf(path, sizeof(path), "%s/ca.crt", dir);
		if (!r && access(path, R_OK) == 0 && !(c->conn.ca_file = strdup(path)))
			r = -ENOMEM;
		if (!r && asprintf(&c->conn.source, "--apiserver-host %s%s", o->apiserver_host,
				   c->conn.token_file ? " with the service account token" : "") < 0) {
			c->conn.source = NULL;
			r = -ENOMEM;
		}
		if (r == -ENOMEM)
			snprintf(err, sizeof(err), "out of memory");
	} else {
		r = k8s_incluster_load(o->serviceaccount_dir, &c->conn, err, sizeof(err));
		if (r == -ENOENT && !getenv("KUBERNETES_SERVICE_HOST"))
			snprintf(err, sizeof(err),
				 "no configuration source: give --manifests PATH, --kubeconfig PATH "
				 "or --apiserver-host URL, or run in a cluster");
	}
	if (r < 0) {
		log_error(TAG, "%s", err);
		return -1;
	}
	if (o->apiserver_host && *o->apiserver_host &&
	    k8s_conn_set_server(&c->conn, o->apiserver_host) < 0) {
		log_error(TAG, "--apiserver-host %s: invalid", o->apiserver_host);
		return -1;
	}
	log_info(TAG, "API server %s (%s%s%s%s)", c->conn.server, c->conn.source,
		 c->conn.token || c->conn.token_file ? ", bearer token" : "",
		 c->conn.cert_file ? ", client certificate" : "",
		 c->conn.insecure ? ", TLS NOT VERIFIED" : "");
	return 0;
}

static int add_informer(struct k8s_cluster *c, const struct k8s_kind *kind, const char *ns,
			const char *selector)
{
	struct k8s_informer *inf = k8s_informer_new(c->api, c->store, kind, ns, selector, NULL,
						    on_changed, c);
	if (!inf)
		return -ENOMEM;
	c->inf[c->ninf++] = inf;
	return 0;
}

static void cluster_free(struct k8s_cluster *c)
{
	for (size_t i = 0; i < c->ninf; i++)
		k8s_informer_free(c->inf[i]);
	k8s_status_free(c->status);
	k8s_leader_free(c->leader);
	k8s_api_free(c->api);
	k8s_store_free(c->store);
	snapshot_release(c->last);
	changed_clear(c);
	k8s_conn_config_clear(&c->conn);
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	free(c->ingress_class);
	free(c->controller_class);
	free(c);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* This replica's name for the Lease: the pod's name, else host_pid. */
static void identity(char *buf, size_t len)
{
	const char *pod = getenv("POD_NAME");
	char host[256] = "ringress";

	if (pod && *pod) {
		snprintf(buf, len, "%s", pod);
		return;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(buf, len, "%s_%d", host, (int)getpid());
}

static int start_status(struct k8s_cluster *c, const struct k8s_options *o, const char *id)
{
	const char *pod_ns = getenv("POD_NAMESPACE");
	const char *lease_ns = pod_ns && *pod_ns ? pod_ns : c->conn.ns ? c->conn.ns : "default";
	struct k8s_status_options so = {.publish_service = o->publish_service,
					.publish_addresses = o->publish_status_address,
					.interval_ms = o->status_update_interval_ms,
					.on_shutdown = o->update_status_on_shutdown,
					.cls = &c->cls,
					.pod_name = getenv("POD_NAME"),
					.pod_namespace = pod_ns};
	const char *eid = o->election_id && *o->election_id ? o->election_id
							     : "ingress-controller-leader";

	c->status = k8s_status_new(c->api, c->store, &so);
	if (!c->status)
		return -1;
	c->leader = k8s_leader_new(c->api, lease_ns, eid, id, o->election_ttl_ms, on_leader, c);
	if (!c->leader)
		return -1;
	log_info(TAG, "status: leader election on lease %s/%s as %s", lease_ns, eid, id);
	return 0;
}

struct k8s_cluster *k8s_cluster_start(const struct k8s_options *o, k8s_publish_fn publish,
				      void *arg)
{
	struct k8s_cluster *c = calloc(1, sizeof(*c));
	const char *wns = o->watch_namespace && *o->watch_namespace ? o->watch_namespace : NULL;
	char id[300], ua[400];
	bool oom = false;
	int r;

	if (!c) {
		log_error(TAG, "out of memory");
		return NULL;
	}
	k8s_conn_config_init(&c->conn);
	c->stop_fd = -1;
	c->publish = publish;
	c->arg = arg;
	c->debounce_ms = o->debounce_ms ? o->debounce_ms : 200;
	c->ingress_class = dup_or_null(o->ingress_class, &oom);
	c->controller_class = dup_or_null(o->controller_class, &oom);
	c->cls = (struct k8s_class_options){.ingress_class = c->ingress_class,
					    .controller_class = c->controller_class,
					    .watch_without_class = o->watch_without_class,
					    .default_ssl_certificate = o->default_ssl_certificate};
	if (oom)
		goto err_oom;
	if (resolve_connection(c, o) < 0)
		goto err;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		log_error(TAG, "curl_global_init: %s", curl_easy_strerror(curl_init_rc));
		goto err;
	}
	identity(id, sizeof(id));
	snprintf(ua, sizeof(ua), "%s (%s)", o->user_agent ? o->user_agent : "ringress", id);
	c->api = k8s_api_new(&c->conn, ua);
	c->store = k8s_store_new();
	if (!c->api || !c->store)
		goto err_oom;

	r = add_informer(c, &k8s_kind_ingressclass, NULL, NULL);
	r = r ? r : add_informer(c, &k8s_kind_ingress, wns, NULL);
	r = r ? r : add_informer(c, &k8s_kind_service, wns, NULL);
	r = r ? r : add_informer(c, &k8s_kind_endpointslice, wns, NULL);
	r = r ? r : add_informer(c, &k8s_kind_secret, wns, "type=kubernetes.io/tls");
	if (!r && o->configmap && *o->configmap) {
		const char *slash = strchr(o->configmap, '/');
		char ns[256], sel[512];
		if (!slash || slash == o->configmap || !slash[1] ||
		    (size_t)(slash - o->configmap) >= sizeof(ns)) {
			log_error(TAG, "--configmap %s: expected NAMESPACE/NAME", o->configmap);
			goto err;
		}
		snprintf(ns, sizeof(ns), "%.*s", (int)(slash - o->configmap), o->configmap);
		snprintf(sel, sizeof(sel), "metadata.name=%s", slash + 1);
		r = add_informer(c, &k8s_kind_configmap, ns, sel);
	}
	if (r)
		goto err_oom;
	if (o->update_status && start_status(c, o, id) < 0)
		goto err;

	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_fd < 0) {
		log_error(TAG, "eventfd: %s", strerror(errno));
		goto err;
	}
	r = pthread_create(&c->thread, NULL, control_thread, c);
	if (r) {
		log_error(TAG, "pthread_create: %s", strerror(r));
		goto err;
	}
	c->started = true;
	log_info(TAG, "watching %s (debounce %u ms, %u ms for endpoints)",
		 wns ? wns : "all namespaces", c->debounce_ms,
		 c->debounce_ms < K8S_ENDPOINT_DEBOUNCE_MS ? c->debounce_ms
							   : K8S_ENDPOINT_DEBOUNCE_MS);
	return c;

err_oom:
	log_error(TAG, "out of memory");
err:
	cluster_free(c);
	return NULL;
}

void k8s_cluster_stop(struct k8s_cluster *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	if (c->started) {
		ssize_t w = write(c->stop_fd, &one, sizeof(one));
		(void)w;
		pthread_join(c->thread, NULL);
	}
	cluster_free(c);
}
