/* status.c - Ingress status writer; see status.h. */
#include "k8s/status.h"

#include "core/log.h"
#include "k8s/ingclass.h"
#include "k8s/watch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAG "status"
#define CALL_TIMEOUT_MS 10000L
#define MAX_INFLIGHT 8
#define KICK_DELAY_MS 100

/* ---- pure helpers ----------------------------------------------------------- */

static const cJSON *jget(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *j = jget(o, key);
	return cJSON_IsString(j) && j->valuestring && *j->valuestring ? j->valuestring : NULL;
}

static bool is_ip(const char *s)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int add_addr(cJSON *arr, const char *key, const char *val)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, key, val)) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	cJSON_AddItemToArray(arr, o);
	return 0;
}

/* Sort key: IPs before host names, then by text. */
static int addr_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	const char *xi = jstr(x, "ip"), *yi = jstr(y, "ip");
	const char *xs = xi ? xi : jstr(x, "hostname"), *ys = yi ? yi : jstr(y, "hostname");

	if (!xi != !yi)
		return xi ? -1 : 1;
	return strcmp(xs ? xs : "", ys ? ys : "");
}

void k8s_status_sort(cJSON *arr)
{
	size_t n = 0, i = 0;
	cJSON **v, *it;

	if (!cJSON_IsArray(arr))
		return;
	for (it = arr->child; it; it = it->next)
		n++;
	if (!n || !(v = malloc(n * sizeof(*v))))
		return;
	while (arr->child) {
		it = cJSON_DetachItemViaPointer(arr, arr->child);
		if (jstr(it, "ip") || jstr(it, "hostname"))
			v[i++] = it;
		else
			cJSON_Delete(it);
	}
	if (i > 1)
		qsort(v, i, sizeof(*v), addr_cmp);
	cJSON *last = NULL;
	for (size_t k = 0; k < i; k++) {
		if (last && !addr_cmp(&last, &v[k])) {
			cJSON_Delete(v[k]); /* same kind and address (addr_cmp orders kinds) */
		} else {
			cJSON_AddItemToArray(arr, v[k]);
			last = v[k];
		}
	}
	free(v);
}

cJSON *k8s_status_from_service(const cJSON *svc)
{
	cJSON *arr = cJSON_CreateArray();
	const cJSON *it;
	int r = 0;

	if (!arr)
		return NULL;
	cJSON_ArrayForEach(it, jget(jget(jget(svc, "status"), "loadBalancer"), "ingress"))
	{
		const char *ip = jstr(it, "ip"), *host = jstr(it, "hostname");
		if (ip)
			r |= add_addr(arr, "ip", ip);
		else if (host)
			r |= add_addr(arr, "hostname", host);
	}
	if (!arr->child) {
		cJSON_ArrayForEach(it, jget(jget(svc, "spec"), "externalIPs"))
		{
			if (cJSON_IsString(it) && *it->valuestring)
				r |= add_addr(arr, is_ip(it->valuestring) ? "ip" : "hostname",
					      it->valuestring);
		}
	}
	if (r) {
		cJSON_Delete(arr);
		return NULL;
	}
	k8s_status_sort(arr);
	return arr;
}

cJSON *k8s_status_from_list(const char *csv)
{
	cJSON *arr = cJSON_CreateArray();
	char *copy = csv ? strdup(csv) : NULL, *save = NULL;

	if (!arr || (csv && !copy)) {
		cJSON_Delete(arr);
		free(copy);
		return NULL;
	}
	for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		size_t n = strlen(t);
		while (n && t[n - 1] == ' ')
			t[--n] = '\0';
		if (n && add_addr(arr, is_ip(t) ? "ip" : "hostname", t) < 0) {
			cJSON_Delete(arr);
			free(copy);
			return NULL;
		}
	}
	free(copy);
	k8s_status_sort(arr);
	return arr;
}

bool k8s_status_equal(const cJSON *ingress, const cJSON *desired)
{
	const cJSON *cur = jget(jget(jget(ingress, "status"), "loadBalancer"), "ingress");
	const cJSON *a = cJSON_IsArray(cur) ? cur->child : NULL;
	const cJSON *b = cJSON_IsArray(desired) ? desired->child : NULL;

	for (; a && b; a = a->next, b = b->next) {
		const char *ai = jstr(a, "ip"), *bi = jstr(b, "ip");
		const char *ah = jstr(a, "hostname"), *bh = jstr(b, "hostname");
		if (!ai != !bi || (ai && strcmp(ai, bi)) || !ah != !bh || (ah && strcmp(ah, bh)))
			return false;
	}
	return !a && !b;
}

/* ---- a small string map: Ingresses we wrote and not yet saw back ------------ */

struct wmap_entry {
	char *key; /* "ns/name" */
	char *val; /* "rv-before-write\n" + desired JSON */
};

struct wmap {
	struct wmap_entry *v;
	size_t cap, n;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void wmap_clear(struct wmap *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		free(m->v[i].key);
		free(m->v[i].val);
	}
	free(m->v);
	*m = (struct wmap){0};
}

static struct wmap_entry *wmap_slot(const struct wmap *m, const char *key)
{
	size_t i = hash(key) & (m->cap - 1);
	while (m->v[i].key && strcmp(m->v[i].key, key))
		i = (i + 1) & (m->cap - 1);
	return &m->v[i];
}

static const char *wmap_get(const struct wmap *m, const char *key)
{
	return m->cap ? wmap_slot(m, key)->val : NULL;
}

/* Takes key and val (freed on failure). */
static void wmap_put(struct wmap *m, char *key, char *val)
{
	if (!key || !val)
		goto drop;
	if ((m->n + 1) * 2 > m->cap) {
		struct wmap old = *m;
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct wmap_entry *v = calloc(cap, sizeof(*v));
		if (!v)
			goto drop;
		m->v = v;
		m->cap = cap;
		m->n = 0;
		for (size_t i = 0; i < old.cap; i++) {
			if (!old.v[i].key)
				continue;
			*wmap_slot(m, old.v[i].key) = old.v[i];
			m->n++;
		}
		free(old.v);
	}
	struct wmap_entry *e = wmap_slot(m, key);
	if (e->key) {
		free(key);
		free(e->val);
		e->val = val;
		return;
	}
	e->key = key;
	e->val = val;
	m->n++;
	return;
drop:
	free(key);
	free(val);
}

/* ---- the manager ---------------------------------------------------------------- */

/* One PATCH: which Ingress, and the resourceVersion it had when decided. */
struct pcall {
	struct k8s_status *st;
	struct k8s_call *call;
	char *ns, *name, *rv;
};

struct k8s_status {
	struct k8s_api *api;
	const struct k8s_store *store;
	const struct k8s_class_options *cls;
	char *publish_ns, *publish_name;
	char *pod_name, *pod_ns;
	cJSON *static_addrs; /* from --publish-status-address, or NULL */
	uint32_t interval_ms;
	bool on_shutdown;

	bool leader, stopping, round_active, again, warned_no_addr;
	int64_t next_round;
	struct k8s_call *addr_call;
	char *pod_selector; /* labelSelector of our pods, once known */
	int others_running; /* other ringress pods Running; -1 unknown */

	cJSON *desired;      /* addresses of the round */
	char *desired_text;  /* its JSON */
	struct pcall **queue; /* patches not sent yet */
	size_t nqueue, qhead;
	struct pcall *inflight[MAX_INFLIGHT];
	unsigned ninflight;
	struct wmap written;

	struct k8s_status_stats st;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pcall_free(struct pcall *p)
{
	if (!p)
		return;
	free(p->ns);
	free(p->name);
	free(p->rv);
	free(p);
}

static void queue_clear(struct k8s_status *st)
{
	for (size_t i = st->qhead; i < st->nqueue; i++)
		pcall_free(st->queue[i]);
	free(st->queue);
	st->queue = NULL;
	st->nqueue = st->qhead = 0;
}

static void round_end(struct k8s_status *st)
{
	int64_t now = mono_ms();

	st->round_active = false;
	queue_clear(st);
	if (st->stopping)
		return;
	st->next_round = now + st->interval_ms;
	if (st->again) {
		st->again = false;
		st->next_round = now + KICK_DELAY_MS;
	}
}

static void send_patches(struct k8s_status *st);

static void patch_done(int result, long status, const char *body, size_t len, const char *err,
		       void *arg)
{
	struct pcall *p = arg;
	struct k8s_status *st = p->st;
	char *key = NULL, *val = NULL;
	(void)body;
	(void)len;

	for (unsigned i = 0; i < MAX_INFLIGHT; i++)
		if (st->inflight[i] == p)
			st->inflight[i] = NULL;
	st->ninflight--;
	if (result == 0 && status >= 200 && status < 300) {
		st->st.patches++;
		log_info(TAG, "ingress %s/%s: status %s %s", p->ns, p->name,
			 cJSON_GetArraySize(st->desired) ? "set to" : "cleared",
			 cJSON_GetArraySize(st->desired) ? st->desired_text : "");
		/* Until the watch shows our write, do not write it again. */
		if (asprintf(&key, "%s/%s", p->ns, p->name) < 0)
			key = NULL;
		if (asprintf(&val, "%s\n%s", p->rv ? p->rv : "", st->desired_text) < 0)
			val = NULL;
		wmap_put(&st->written, key, val);
	} else if (result == 0 && status == 404) {
		log_debug(TAG, "ingress %s/%s: gone before its status was written", p->ns,
			  p->name);
	} else {
		st->st.errors++;
		log_warn(TAG, "ingress %s/%s: writing status failed: %s%s (HTTP %ld)", p->ns,
			 p->name, result < 0 ? strerror(-result) : "", result < 0 ? err : "",
			 status);
	}
	pcall_free(p);
	send_patches(st);
}

static void send_patches(struct k8s_status *st)
{
	while (st->qhead < st->nqueue && st->ninflight < MAX_INFLIGHT) {
		struct pcall *p = st->queue[st->qhead++];
		char path[1024], *body = NULL;
		unsigned slot = 0;

		if (asprintf(&body, "{\"status\":{\"loadBalancer\":{\"ingress\":%s}}}",
			     cJSON_GetArraySize(st->desired) ? st->desired_text : "null") < 0) {
			pcall_free(p);
			continue;
		}
		snprintf(path, sizeof(path),
			 "/apis/networking.k8s.io/v1/namespaces/%s/ingresses/%s/status", p->ns,
			 p->name);
		p->call = k8s_api_call(st->api, "PATCH", path, body, "application/merge-patch+json",
				       0, CALL_TIMEOUT_MS, NULL, patch_done, p);
		free(body);
		if (!p->call) {
			pcall_free(p);
			continue;
		}
		while (st->inflight[slot])
			slot++;
		st->inflight[slot] = p;
		st->ninflight++;
	}
	if (st->qhead == st->nqueue && !st->ninflight && st->round_active)
		round_end(st);
}

/* Compares every Ingress of ours with desired and queues the patches. */
static void compare(struct k8s_status *st)
{
	size_t n;
	const struct k8s_object *ing = k8s_store_list(st->store, "Ingress", &n);
	bool dflt = k8s_have_default_class(st->store, st->cls);

	if (!st->leader) { /* lost the lease while reading the addresses */
		round_end(st);
		return;
	}
	free(st->desired_text);
	st->desired_text = cJSON_PrintUnformatted(st->desired);
	if (!st->desired_text) {
		round_end(st);
		return;
	}
	queue_clear(st);
	if (n && !(st->queue = calloc(n, sizeof(*st->queue)))) {
		round_end(st);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char key[600];
		if (!k8s_ingress_is_ours(st->store, st->cls, ing[i].obj, dflt))
			continue;
		if (k8s_status_equal(ing[i].obj, st->desired))
			continue;
		const char *rv = k8s_object_rv(ing[i].obj);
		snprintf(key, sizeof(key), "%s/%s", ing[i].ns, ing[i].name);
		const char *w = wmap_get(&st->written, key);
		if (w && rv) {
			size_t l = strlen(rv);
			/* Written from this very version: the watch has not caught up. */
			if (!strncmp(w, rv, l) && w[l] == '\n' && !strcmp(w + l + 1, st->desired_text))
				continue;
		}
		struct pcall *p = calloc(1, sizeof(*p));
		if (!p)
			break;
		p->st = st;
		p->ns = strdup(ing[i].ns);
		p->name = strdup(ing[i].name);
		p->rv = rv ? strdup(rv) : NULL;
		if (!p->ns || !p->name || (rv && !p->rv)) {
			pcall_free(p);
			break;
		}
		st->queue[st->nqueue++] = p;
	}
	if (st->nqueue)
		log_debug(TAG, "%zu ingresses to update", st->nqueue);
	send_patches(st);
}

static void set_desired(struct k8s_status *st, cJSON *d)
{
	cJSON_Delete(st->desired);
	st->desired = d;
}

/* ---- where the addresses come from -------------------------------------------- */

static void pods_done(int result, long status, const char *body, size_t len, const char *err,
		      void *arg)
{
	struct k8s_status *st = arg;
	cJSON *root, *arr;
	const cJSON *it;
	int others = 0;

	st->addr_call = NULL;
	if (result < 0 || status != 200 || !(root = cJSON_ParseWithLength(body, len))) {
		log_warn(TAG, "listing ringress pods failed: %s (HTTP %ld)",
			 result < 0 ? err : "", status);
		st->others_running = -1;
		if (st->stopping)
			set_desired(st, cJSON_CreateArray()), compare(st);
		else
			round_end(st);
		return;
	}
	arr = cJSON_CreateArray();
	cJSON_ArrayForEach(it, jget(root, "items"))
	{
		const cJSON *meta = jget(it, "metadata");
		const char *phase = jstr(jget(it, "status"), "phase");
		const char *ip = jstr(jget(it, "status"), "hostIP");
		const char *name = jstr(meta, "name");

		if (!phase || strcmp(phase, "Running") || jget(meta, "deletionTimestamp"))
			continue;
		if (name && st->pod_name && strcmp(name, st->pod_name))
			others++;
		if (ip && arr)
			add_addr(arr, "ip", ip);
	}
	cJSON_Delete(root);
	st->others_running = others;
	if (!arr) {
		round_end(st);
		return;
	}
	if (st->stopping) {
		cJSON_Delete(arr);
		if (others) {
			log_info(TAG, "%d other ringress pods running: status kept", others);
			round_end(st);
			return;
		}
		set_desired(st, cJSON_CreateArray());
		if (st->desired)
			compare(st);
		else
			round_end(st);
		return;
	}
	k8s_status_sort(arr);
	set_desired(st, arr);
	compare(st);
}

static void list_pods(struct k8s_status *st)
{
	char path[2048], esc[1024];

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?labelSelector=%s", st->pod_ns,
		 k8s_url_escape(st->pod_selector, esc, sizeof(esc)));
	st->addr_call = k8s_api_call(st->api, "GET", path, NULL, NULL, 0, CALL_TIMEOUT_MS, NULL,
				     pods_done, st);
	if (!st->addr_call)
		round_end(st);
}

/* Labels that differ between two pods of one DaemonSet during a rollout. */
static bool rollout_label(const char *k)
{
	return !strcmp(k, "pod-template-hash") || !strcmp(k, "controller-revision-hash") ||
	       !strcmp(k, "pod-template-generation");
}

static void own_pod_done(int result, long status, const char *body, size_t len,
			 const char *err, void *arg)
{
	struct k8s_status *st = arg;
	cJSON *pod;
	const cJSON *l;
	char sel[1024] = "";
	size_t o = 0;

	st->addr_call = NULL;
	if (result < 0 || status != 200 || !(pod = cJSON_ParseWithLength(body, len))) {
		log_warn(TAG, "reading our pod %s/%s failed: %s (HTTP %ld)", st->pod_ns,
			 st->pod_name, result < 0 ? err : "", status);
		if (st->stopping)
			set_desired(st, cJSON_CreateArray()), compare(st);
		else
			round_end(st);
		return;
	}
	cJSON_ArrayForEach(l, jget(jget(pod, "metadata"), "labels"))
	{
		if (!cJSON_IsString(l) || rollout_label(l->string))
			continue;
		int w = snprintf(sel + o, sizeof(sel) - o, "%s%s=%s", o ? "," : "", l->string,
				 l->valuestring);
		if (w < 0 || (size_t)w >= sizeof(sel) - o)
			break;
		o += (size_t)w;
	}
	cJSON_Delete(pod);
	if (!o) {
		log_warn(TAG, "our pod %s/%s has no labels: cannot find the other ringress pods",
			 st->pod_ns, st->pod_name);
		if (st->stopping)
			set_desired(st, cJSON_CreateArray()), compare(st);
		else
			round_end(st);
		return;
	}
	free(st->pod_selector);
	st->pod_selector = strdup(sel);
	if (!st->pod_selector) {
		round_end(st);
		return;
	}
	list_pods(st);
}

static void pod_addresses(struct k8s_status *st)
{
	char path[1024];

	if (st->pod_selector) {
		list_pods(st);
		return;
	}
	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", st->pod_ns, st->pod_name);
	st->addr_call = k8s_api_call(st->api, "GET", path, NULL, NULL, 0, CALL_TIMEOUT_MS, NULL,
				     own_pod_done, st);
	if (!st->addr_call)
		round_end(st);
}

static void service_done(int result, long status, const char *body, size_t len,
			 const char *err, void *arg)
{
	struct k8s_status *st = arg;
	cJSON *svc;

	st->addr_call = NULL;
	if (result < 0 || status != 200 || !(svc = cJSON_ParseWithLength(body, len))) {
		log_warn(TAG, "--publish-service %s/%s: %s (HTTP %ld), status not updated",
			 st->publish_ns, st->publish_name, result < 0 ? err : "unreadable",
			 status);
		st->st.errors++;
		round_end(st);
		return;
	}
	cJSON *d = k8s_status_from_service(svc);
	cJSON_Delete(svc);
	if (!d) {
		round_end(st);
		return;
	}
	if (!d->child && !st->warned_no_addr) {
		log_warn(TAG, "--publish-service %s/%s has no load-balancer address nor external "
			      "IPs yet",
			 st->publish_ns, st->publish_name);
		st->warned_no_addr = true;
	}
	set_desired(st, d);
	compare(st);
}

static void round_start(struct k8s_status *st)
{
	char path[1024];

	st->round_active = true;
	st->st.rounds++;
	if (st->publish_ns) {
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s", st->publish_ns,
			 st->publish_name);
		st->addr_call = k8s_api_call(st->api, "GET", path, NULL, NULL, 0, CALL_TIMEOUT_MS,
					     NULL, service_done, st);
		if (!st->addr_call)
			round_end(st);
		return;
	}
	if (st->static_addrs) {
		set_desired(st, cJSON_Duplicate(st->static_addrs, 1));
		if (st->desired)
			compare(st);
		else
			round_end(st);
		return;
	}
	if (st->pod_name && st->pod_ns) {
		pod_addresses(st);
		return;
	}
	if (!st->warned_no_addr) {
		log_warn(TAG, "no address to publish: set --publish-service or "
			      "--publish-status-address (or POD_NAME and POD_NAMESPACE)");
		st->warned_no_addr = true;
	}
	round_end(st);
}

/* ---- public ------------------------------------------------------------------- */

static int split_ns_name(const char *s, char **ns, char **name)
{
	const char *slash = strchr(s, '/');
	if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/'))
		return -EINVAL;
	*ns = strndup(s, (size_t)(slash - s));
	*name = strdup(slash + 1);
	return *ns && *name ? 0 : -ENOMEM;
}

struct k8s_status *k8s_status_new(struct k8s_api *api, const struct k8s_store *store,
				  const struct k8s_status_options *o)
{
	struct k8s_status *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->api = api;
	st->store = store;
	st->cls = o->cls;
	st->interval_ms = o->interval_ms ? o->interval_ms : 60000;
	st->on_shutdown = o->on_shutdown;
	st->others_running = -1;
	if (o->publish_service && *o->publish_service &&
	    split_ns_name(o->publish_service, &st->publish_ns, &st->publish_name) < 0)
		goto err;
	if (o->publish_addresses && *o->publish_addresses &&
	    !(st->static_addrs = k8s_status_from_list(o->publish_addresses)))
		goto err;
	if (o->pod_name && *o->pod_name && !(st->pod_name = strdup(o->pod_name)))
		goto err;
	if (o->pod_namespace && *o->pod_namespace && !(st->pod_ns = strdup(o->pod_namespace)))
		goto err;
	return st;
err:
	k8s_status_free(st);
	return NULL;
}

void k8s_status_free(struct k8s_status *st)
{
	if (!st)
		return;
	k8s_api_cancel(st->api, st->addr_call);
	for (unsigned i = 0; i < MAX_INFLIGHT; i++) {
		if (st->inflight[i]) {
			k8s_api_cancel(st->api, st->inflight[i]->call);
			pcall_free(st->inflight[i]);
		}
	}
	queue_clear(st);
	wmap_clear(&st->written);
	cJSON_Delete(st->desired);
	cJSON_Delete(st->static_addrs);
	free(st->desired_text);
	free(st->publish_ns);
	free(st->publish_name);
	free(st->pod_name);
	free(st->pod_ns);
	free(st->pod_selector);
	free(st);
}

void k8s_status_set_leader(struct k8s_status *st, bool leader)
{
	st->leader = leader;
	if (leader)
		st->next_round = mono_ms();
	else
		queue_clear(st); /* writes in flight finish; nothing new */
}

void k8s_status_kick(struct k8s_status *st)
{
	int64_t soon = mono_ms() + KICK_DELAY_MS;

	if (!st->leader || st->stopping)
		return;
	if (st->round_active)
		st->again = true;
	else if (st->next_round > soon)
		st->next_round = soon;
}

int64_t k8s_status_tick(struct k8s_status *st, int64_t now)
{
	if (!st->leader || st->stopping)
		return -1;
	if (st->round_active)
		return -1;
	if (now < st->next_round)
		return st->next_round;
	round_start(st);
	return st->round_active ? -1 : st->next_round;
}

void k8s_status_shutdown(struct k8s_status *st)
{
	bool leader = st->leader;

	st->stopping = true;
	if (!leader || !st->on_shutdown)
		return;
	/* Let a round in flight finish its writes; replace what is queued. */
	k8s_api_cancel(st->api, st->addr_call);
	st->addr_call = NULL;
	queue_clear(st);
	st->round_active = true;
	if (st->pod_name && st->pod_ns) {
		/* Only the last instance removes the status. */
		pod_addresses(st);
		return;
	}
	set_desired(st, cJSON_CreateArray());
	if (st->desired)
		compare(st);
	else
		round_end(st);
}

bool k8s_status_busy(const struct k8s_status *st)
{
	return st && (st->addr_call || st->ninflight);
}

void k8s_status_stats(const struct k8s_status *st, struct k8s_status_stats *out)
{
	*out = st->st;
}
