/* informer.c - list + watch of one kind; see informer.h for the protocol. */
#include "k8s/informer.h"

#include "core/log.h"
#include "k8s/watch.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TAG "k8s"
#define LIST_TIMEOUT_MS 120000L
#define WATCH_SLACK_S 30

const struct k8s_kind k8s_kind_ingressclass = {"IngressClass", "networking.k8s.io/v1",
					       "/apis/networking.k8s.io/v1", "ingressclasses",
					       false};
const struct k8s_kind k8s_kind_ingress = {"Ingress", "networking.k8s.io/v1",
					  "/apis/networking.k8s.io/v1", "ingresses", true};
const struct k8s_kind k8s_kind_service = {"Service", "v1", "/api/v1", "services", true};
const struct k8s_kind k8s_kind_endpointslice = {"EndpointSlice", "discovery.k8s.io/v1",
						"/apis/discovery.k8s.io/v1", "endpointslices", true};
const struct k8s_kind k8s_kind_secret = {"Secret", "v1", "/api/v1", "secrets", true};
const struct k8s_kind k8s_kind_configmap = {"ConfigMap", "v1", "/api/v1", "configmaps", true};

enum inf_state {
	INF_IDLE,    /* nothing started yet */
	INF_LISTING, /* a list page in flight */
	INF_WATCHING,
	INF_WAIT, /* waiting until retry_at, then next_action */
};

enum inf_action { ACT_LIST, ACT_WATCH };

struct k8s_informer {
	struct k8s_api *api;
	struct k8s_store *store;
	const struct k8s_kind *kind;
	char *base;     /* path without query: /apis/.../namespaces/NS/ingresses */
	char *selector; /* "&fieldSelector=..." (escaped) or "" */
	struct k8s_informer_tuning tun;
	k8s_informer_changed_fn changed;
	void *arg;

	enum inf_state state;
	enum inf_action next_action;
	int64_t retry_at;
	unsigned failures; /* consecutive, for the backoff */
	unsigned expired;  /* consecutive 410s, to back off a server that loops */
	unsigned seed;

	struct k8s_call *call;
	char *rv;                  /* last resourceVersion seen */
	struct k8s_store *pending; /* list pages collected so far */
	char *cont;                /* continue token of the next page */
	bool synced;

	/* watch stream */
	struct k8s_linebuf lb;
	bool got_data;   /* the current watch received a 2xx */
	int stream_stop; /* why the data callback stopped the stream */
	unsigned stream_events;
	int64_t stream_start;

	struct k8s_informer_stats st;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_rv(struct k8s_informer *inf, const char *rv)
{
	char *d;

	if (!rv || !*rv || (inf->rv && !strcmp(inf->rv, rv)))
		return;
	d = strdup(rv);
	if (!d)
		return; /* keep the older one: a relist at worst */
	free(inf->rv);
	inf->rv = d;
}

static void retry(struct k8s_informer *inf, enum inf_action act, bool backoff)
{
	uint64_t d = 0;

	inf->state = INF_WAIT;
	inf->next_action = act;
	if (backoff) {
		unsigned shift = inf->failures < 16 ? inf->failures : 16;
		d = (uint64_t)inf->tun.backoff_min_ms << shift;
		if (d > inf->tun.backoff_max_ms)
			d = inf->tun.backoff_max_ms;
		/* Equal jitter: [d/2, d]. */
		d = d / 2 + (uint64_t)rand_r(&inf->seed) % (d / 2 + 1);
		inf->failures++;
		inf->st.failures++;
	}
	inf->retry_at = mono_ms() + (int64_t)d;
}

static const char *short_body(const char *body, char *buf, size_t len)
{
	size_t n = 0;
	for (; body && *body && n + 1 < len; body++)
		buf[n++] = (*body == '\n' || *body == '\r') ? ' ' : *body;
	buf[n] = '\0';
	return buf;
}

/* ---- list ------------------------------------------------------------------- */

static void list_page(struct k8s_informer *inf);

/* Adds the items of one page to the scratch store. Returns 0, -EINVAL (not
 * a list) or -ENOMEM. */
static int take_page(struct k8s_informer *inf, cJSON *root, const char **rv, const char **cont)
{
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
	cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "items");
	const cJSON *j;

	if (!cJSON_IsObject(root) || !cJSON_IsObject(meta))
		return -EINVAL;
	if (items && !cJSON_IsArray(items) && !cJSON_IsNull(items))
		return -EINVAL;
	j = cJSON_GetObjectItemCaseSensitive(meta, "resourceVersion");
	*rv = cJSON_IsString(j) ? j->valuestring : NULL;
	j = cJSON_GetObjectItemCaseSensitive(meta, "continue");
	*cont = cJSON_IsString(j) && *j->valuestring ? j->valuestring : NULL;

	while (cJSON_IsArray(items) && items->child) {
		cJSON *it = cJSON_DetachItemViaPointer(items, items->child);
		const char *why = k8s_object_check(it, inf->kind->namespaced);
		char id[320];

		if (why) {
			log_warn(TAG, "list %s: object %s skipped: %s", inf->kind->kind,
				 k8s_object_id(it, id, sizeof(id)), why);
			inf->st.skipped++;
			cJSON_Delete(it);
			continue;
		}
		if (k8s_object_trim(it, inf->kind->kind, inf->kind->api_version) < 0) {
			cJSON_Delete(it);
			return -ENOMEM;
		}
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(it, "metadata");
		const char *name = cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring;
		const cJSON *ns = cJSON_GetObjectItemCaseSensitive(m, "namespace");
		int r = k8s_store_upsert(inf->pending, inf->kind->kind,
					 inf->kind->namespaced ? ns->valuestring : "", name, it,
					 NULL, 0);
		if (r == -ENOMEM)
			return r;
	}
	return 0;
}

static void start_watch(struct k8s_informer *inf);

static void list_done(int result, long status, const char *body, size_t len, const char *err,
		      void *arg)
{
	struct k8s_informer *inf = arg;
	char buf[200];
	const char *rv = NULL, *cont = NULL;
	cJSON *root;
	int r;

	inf->call = NULL;
	if (result < 0 || status != 200) {
		if (status == 410 && inf->expired++ < 3) {
			log_info(TAG, "list %s: continue token expired (410), listing again",
				 inf->kind->kind);
			k8s_store_free(inf->pending);
			inf->pending = NULL;
			retry(inf, ACT_LIST, false);
			return;
		}
		if (result < 0)
			log_warn(TAG, "list %s: %s (%s), retrying", inf->kind->kind,
				 strerror(-result), err && *err ? err : "no response");
		else
			log_warn(TAG, "list %s: HTTP %ld: %s, retrying", inf->kind->kind, status,
				 short_body(body, buf, sizeof(buf)));
		goto fail;
	}
	root = cJSON_ParseWithLength(body, len);
	if (!root) {
		log_warn(TAG, "list %s: response is not valid JSON, retrying", inf->kind->kind);
		goto fail;
	}
	r = take_page(inf, root, &rv, &cont);
	if (r == 0 && !rv) {
		log_warn(TAG, "list %s: response has no metadata.resourceVersion, retrying",
			 inf->kind->kind);
		r = -EINVAL;
	} else if (r == -EINVAL) {
		log_warn(TAG, "list %s: response is not a list, retrying", inf->kind->kind);
	} else if (r == -ENOMEM) {
		log_error(TAG, "list %s: out of memory, retrying", inf->kind->kind);
	}
	if (r == 0) {
		set_rv(inf, rv);
		free(inf->cont);
		inf->cont = cont ? strdup(cont) : NULL;
		if (cont && !inf->cont)
			r = -ENOMEM;
	}
	cJSON_Delete(root);
	if (r < 0)
		goto fail;
	if (inf->cont) {
		list_page(inf);
		return;
	}
	/* Complete: swap the kind in. */
	size_t n = k8s_store_count(inf->pending);
	if (k8s_store_replace_kind(inf->store, inf->kind->kind, inf->pending) < 0) {
		log_error(TAG, "list %s: out of memory, retrying", inf->kind->kind);
		goto fail;
	}
	k8s_store_free(inf->pending);
	inf->pending = NULL;
	inf->expired = 0;
	inf->st.lists++;
	log_info(TAG, "list %s: %zu objects at resourceVersion %s%s", inf->kind->kind, n,
		 inf->rv ? inf->rv : "?", inf->synced ? " (relist)" : "");
	inf->synced = true;
	inf->changed(inf->arg, inf->kind, NULL);
	start_watch(inf);
	return;

fail:
	k8s_store_free(inf->pending);
	inf->pending = NULL;
	free(inf->cont);
	inf->cont = NULL;
	retry(inf, ACT_LIST, true);
}

static void list_page(struct k8s_informer *inf)
{
	char path[8192], esc[4096];

	if (!inf->pending && !(inf->pending = k8s_store_new())) {
		retry(inf, ACT_LIST, true);
		return;
	}
	if (inf->cont)
		snprintf(path, sizeof(path), "%s?limit=%u&continue=%s%s", inf->base,
			 inf->tun.page_limit, k8s_url_escape(inf->cont, esc, sizeof(esc)),
			 inf->selector);
	else
		snprintf(path, sizeof(path), "%s?limit=%u%s", inf->base, inf->tun.page_limit,
			 inf->selector);
	inf->state = INF_LISTING;
	inf->call = k8s_api_call(inf->api, "GET", path, NULL, NULL, 0, LIST_TIMEOUT_MS, NULL,
				 list_done, inf);
	if (!inf->call)
		retry(inf, ACT_LIST, true);
}

static void start_list(struct k8s_informer *inf)
{
	k8s_store_free(inf->pending);
	inf->pending = NULL;
	free(inf->cont);
	inf->cont = NULL;
	list_page(inf);
}

/* ---- watch ------------------------------------------------------------------ */

static void apply_event(struct k8s_informer *inf, struct k8s_event *ev)
{
	static const char *names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};
	const char *why;
	char id[320];
	int r;

	if (ev->type == K8S_EV_BOOKMARK) {
		set_rv(inf, ev->rv);
		return;
	}
	why = k8s_object_check(ev->object, inf->kind->namespaced);
	if (why) {
		log_warn(TAG, "watch %s: %s event for %s skipped: %s", inf->kind->kind,
			 names[ev->type], k8s_object_id(ev->object, id, sizeof(id)), why);
		inf->st.skipped++;
		return;
	}
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(ev->object, "metadata");
	const char *name = cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring;
	const cJSON *jns = cJSON_GetObjectItemCaseSensitive(m, "namespace");
	const char *ns = inf->kind->namespaced ? jns->valuestring : "";
	char *rv = ev->rv ? strdup(ev->rv) : NULL;

	inf->st.events++;
	if (ev->type == K8S_EV_DELETED) {
		r = k8s_store_delete(inf->store, inf->kind->kind, ns, name);
		log_debug(TAG, "watch %s: DELETED %s", inf->kind->kind,
			  k8s_object_id(ev->object, id, sizeof(id)));
		if (r == 0)
			inf->changed(inf->arg, inf->kind, ev->object);
	} else {
		log_debug(TAG, "watch %s: %s %s", inf->kind->kind, names[ev->type],
			  k8s_object_id(ev->object, id, sizeof(id)));
		k8s_object_id(ev->object, id, sizeof(id));
		if (k8s_object_trim(ev->object, inf->kind->kind, inf->kind->api_version) == 0) {
			cJSON *obj = ev->object;
			ev->object = NULL; /* the store owns it now, even on error */
			r = k8s_store_upsert(inf->store, inf->kind->kind, ns, name, obj, NULL, 0);
			if (r >= 0)
				inf->changed(inf->arg, inf->kind,
					     k8s_store_get(inf->store, inf->kind->kind, ns, name)->obj);
			else
				log_error(TAG, "watch %s: cannot store %s: %s", inf->kind->kind, id,
					  strerror(-r));
		}
	}
	set_rv(inf, rv);
	free(rv);
}

static int on_line(const char *line, size_t len, void *arg)
{
	struct k8s_informer *inf = arg;
	struct k8s_event ev;
	char why[96];

	if (k8s_watch_parse(line, len, &ev, why, sizeof(why)) < 0) {
		char text[84];
		size_t n = len < 80 ? len : 80;
		for (size_t i = 0; i < n; i++)
			text[i] = (line[i] >= 0x20 && line[i] < 0x7f) ? line[i] : '?';
		text[n] = '\0';
		log_warn(TAG, "watch %s: event skipped: %s: %s%s", inf->kind->kind, why, text,
			 len > 80 ? "..." : "");
		inf->st.skipped++;
		return 0;
	}
	inf->stream_events++;
	if (ev.type == K8S_EV_ERROR) {
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ev.object, "message");
		log_info(TAG, "watch %s: ERROR event (code %d: %s), listing again", inf->kind->kind,
			 ev.code, cJSON_IsString(msg) ? msg->valuestring : "no message");
		cJSON_Delete(ev.object);
		return ev.code == 410 ? -ESTALE : -EPROTO;
	}
	apply_event(inf, &ev);
	cJSON_Delete(ev.object);
	return 0;
}

static int watch_data(const char *data, size_t len, void *arg)
{
	struct k8s_informer *inf = arg;
	int r;

	if (!inf->got_data) {
		inf->got_data = true;
		inf->failures = 0; /* the server answers again */
	}
	r = k8s_linebuf_feed(&inf->lb, data, len, on_line, inf);
	if (r == -E2BIG)
		log_warn(TAG, "watch %s: event longer than %u bytes, listing again",
			 inf->kind->kind, K8S_LINE_MAX);
	if (r < 0)
		inf->stream_stop = r;
	return r;
}

static void watch_done(int result, long status, const char *body, size_t len, const char *err,
		       void *arg)
{
	struct k8s_informer *inf = arg;
	char buf[200];
	(void)len;

	inf->call = NULL;
	if (inf->stream_stop == -ESTALE || status == 410) {
		inf->st.relists++;
		inf->failures = 0;
		retry(inf, ACT_LIST, inf->expired++ >= 3);
		return;
	}
	if (inf->stream_stop) { /* ERROR event, or a line too long */
		inf->st.relists++;
		retry(inf, ACT_LIST, true);
		return;
	}
	if (result == 0 && status == 200) {
		/* The server ended the stream (timeoutSeconds): renew it. */
		if (k8s_linebuf_pending(&inf->lb))
			log_warn(TAG, "watch %s: stream ended inside an event (%zu bytes dropped)",
				 inf->kind->kind, k8s_linebuf_pending(&inf->lb));
		log_debug(TAG, "watch %s: stream ended after %u events, watching again",
			  inf->kind->kind, inf->stream_events);
		inf->expired = 0;
		/* A server that ends every stream at once must not make us spin. */
		retry(inf, ACT_WATCH, !inf->stream_events && mono_ms() - inf->stream_start < 1000);
		return;
	}
	if (result < 0)
		log_warn(TAG, "watch %s: %s (%s), retrying", inf->kind->kind, strerror(-result),
			 err && *err ? err : "connection lost");
	else
		log_warn(TAG, "watch %s: HTTP %ld: %s, retrying", inf->kind->kind, status,
			 short_body(body, buf, sizeof(buf)));
	retry(inf, ACT_WATCH, true);
}

static void start_watch(struct k8s_informer *inf)
{
	char path[8192], rv[512];
	unsigned t = inf->tun.watch_timeout_s;

	if (!inf->rv) { /* cannot resume without a version */
		start_list(inf);
		return;
	}
	if (!t)
		t = 300 + (unsigned)rand_r(&inf->seed) % 300;
	snprintf(path, sizeof(path),
		 "%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%u%s",
		 inf->base, k8s_url_escape(inf->rv, rv, sizeof(rv)), t, inf->selector);
	k8s_linebuf_reset(&inf->lb);
	inf->got_data = false;
	inf->stream_stop = 0;
	inf->stream_events = 0;
	inf->stream_start = mono_ms();
	inf->state = INF_WATCHING;
	inf->st.watches++;
	inf->call = k8s_api_call(inf->api, "GET", path, NULL, NULL, K8S_CALL_STREAM,
				 (long)(t + WATCH_SLACK_S) * 1000, watch_data, watch_done, inf);
	if (!inf->call)
		retry(inf, ACT_WATCH, true);
}

/* ---- lifecycle ---------------------------------------------------------------- */

struct k8s_informer *k8s_informer_new(struct k8s_api *api, struct k8s_store *store,
				      const struct k8s_kind *kind, const char *ns,
				      const char *field_selector,
				      const struct k8s_informer_tuning *tuning,
				      k8s_informer_changed_fn changed, void *arg)
{
	struct k8s_informer *inf = calloc(1, sizeof(*inf));
	char esc[1024];
	int r;

	if (!inf)
		return NULL;
	inf->api = api;
	inf->store = store;
	inf->kind = kind;
	inf->changed = changed;
	inf->arg = arg;
	if (tuning)
		inf->tun = *tuning;
	if (!inf->tun.page_limit)
		inf->tun.page_limit = 500;
	if (!inf->tun.backoff_min_ms)
		inf->tun.backoff_min_ms = 500;
	if (!inf->tun.backoff_max_ms)
		inf->tun.backoff_max_ms = 30000;
	inf->seed = (unsigned)(mono_ms() ^ (int64_t)getpid() ^ (int64_t)(uintptr_t)inf);
	if (kind->namespaced && ns && *ns)
		r = asprintf(&inf->base, "%s/namespaces/%s/%s", kind->prefix, ns, kind->plural);
	else
		r = asprintf(&inf->base, "%s/%s", kind->prefix, kind->plural);
	if (r < 0) {
		inf->base = NULL;
		goto err;
	}
	if (field_selector && *field_selector)
		r = asprintf(&inf->selector, "&fieldSelector=%s",
			     k8s_url_escape(field_selector, esc, sizeof(esc)));
	else
		r = (inf->selector = strdup("")) ? 0 : -1;
	if (r < 0) {
		inf->selector = NULL;
		goto err;
	}
	return inf;
err:
	k8s_informer_free(inf);
	return NULL;
}

void k8s_informer_free(struct k8s_informer *inf)
{
	if (!inf)
		return;
	k8s_api_cancel(inf->api, inf->call);
	k8s_store_free(inf->pending);
	k8s_linebuf_free(&inf->lb);
	free(inf->cont);
	free(inf->rv);
	free(inf->base);
	free(inf->selector);
	free(inf);
}

int64_t k8s_informer_tick(struct k8s_informer *inf, int64_t now)
{
	switch (inf->state) {
	case INF_IDLE:
		start_list(inf);
		break;
	case INF_WAIT:
		if (now < inf->retry_at)
			return inf->retry_at;
		if (inf->next_action == ACT_WATCH)
			start_watch(inf);
		else
			start_list(inf);
		break;
	default:
		break;
	}
	return inf->state == INF_WAIT ? inf->retry_at : -1;
}

bool k8s_informer_synced(const struct k8s_informer *inf)
{
	return inf->synced;
}

const struct k8s_kind *k8s_informer_kind(const struct k8s_informer *inf)
{
	return inf->kind;
}

void k8s_informer_stats(const struct k8s_informer *inf, struct k8s_informer_stats *out)
{
	*out = inf->st;
}
