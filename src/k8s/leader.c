/* leader.c - Lease-based leader election; see leader.h. */
#include "k8s/leader.h"

#include "core/log.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG "leader"
#define CALL_TIMEOUT_MS 10000L

enum leader_state {
	L_IDLE,    /* waiting for next_try */
	L_GET,     /* reading the Lease */
	L_WRITE,   /* creating or updating it */
	L_RELEASE, /* writing an empty holder */
	L_STOPPED,
};

struct k8s_leader {
	struct k8s_api *api;
	char *ns, *name, *identity, *path, *coll;
	uint32_t ttl_ms, renew_ms, retry_ms;
	k8s_leader_fn fn;
	void *arg;

	enum leader_state state;
	struct k8s_call *call;
	int64_t next_try;
	bool leader;
	int64_t last_renew; /* when we last wrote the Lease as holder */

	/* The record as last seen, and when (our clock) it last changed. */
	char *seen_holder, *seen_renew;
	int64_t seen_at;
	cJSON *lease; /* last Lease we wrote (for release), or NULL */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *k8s_microtime(const struct timespec *t, char *buf, size_t len)
{
	struct tm tm;
	char s[24];

	gmtime_r(&t->tv_sec, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06ldZ", s, t->tv_nsec / 1000);
	return buf;
}

static const cJSON *jget(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *j = jget(o, key);
	return cJSON_IsString(j) && j->valuestring ? j->valuestring : NULL;
}

static void set_leader(struct k8s_leader *l, bool leader, const char *why)
{
	if (l->leader == leader)
		return;
	l->leader = leader;
	if (leader)
		log_info(TAG, "%s: became leader of lease %s/%s", l->identity, l->ns, l->name);
	else
		log_warn(TAG, "%s: no longer leader of lease %s/%s (%s)", l->identity, l->ns,
			 l->name, why);
	l->fn(l->arg, leader);
}

static void schedule(struct k8s_leader *l, int64_t delay)
{
	l->state = L_IDLE;
	l->next_try = mono_ms() + delay;
}

/* Notes the record's holder and renewTime; restarts our observation clock
 * when they changed. */
static void observe(struct k8s_leader *l, const char *holder, const char *renew)
{
	holder = holder ? holder : "";
	renew = renew ? renew : "";
	if (l->seen_holder && l->seen_renew && !strcmp(l->seen_holder, holder) &&
	    !strcmp(l->seen_renew, renew))
		return;
	free(l->seen_holder);
	free(l->seen_renew);
	l->seen_holder = strdup(holder);
	l->seen_renew = strdup(renew);
	l->seen_at = mono_ms();
}

static void write_done(int result, long status, const char *body, size_t len, const char *err,
		       void *arg)
{
	struct k8s_leader *l = arg;

	l->call = NULL;
	if (result == 0 && (status == 200 || status == 201)) {
		cJSON *lease = cJSON_ParseWithLength(body, len);
		cJSON_Delete(l->lease);
		l->lease = cJSON_IsObject(lease) ? lease : NULL;
		if (!l->lease)
			cJSON_Delete(lease);
		const cJSON *spec = jget(l->lease, "spec");
		observe(l, jstr(spec, "holderIdentity"), jstr(spec, "renewTime"));
		l->last_renew = mono_ms();
		set_leader(l, true, NULL);
	} else if (status == 409) {
		log_debug(TAG, "%s: lease %s/%s changed meanwhile (409)", l->identity, l->ns,
			  l->name);
	} else {
		log_warn(TAG, "%s: writing lease %s/%s: %s", l->identity, l->ns, l->name,
			 result < 0 ? (err && *err ? err : strerror(-result)) : "HTTP error");
		if (result == 0)
			log_warn(TAG, "%s: HTTP %ld", l->identity, status);
	}
	schedule(l, l->retry_ms);
}

/* Writes lease (taken) with us as holder: POST when create, else PUT. */
static void write_lease(struct k8s_leader *l, cJSON *lease, bool create)
{
	char *body = cJSON_PrintUnformatted(lease);

	cJSON_Delete(lease);
	if (!body) {
		schedule(l, l->retry_ms);
		return;
	}
	l->state = L_WRITE;
	l->call = k8s_api_call(l->api, create ? "POST" : "PUT", create ? l->coll : l->path, body,
			       "application/json", 0, CALL_TIMEOUT_MS, NULL, write_done, l);
	free(body);
	if (!l->call)
		schedule(l, l->retry_ms);
}

/* Builds the Lease we want from the one read (NULL: create). */
static cJSON *our_lease(struct k8s_leader *l, const cJSON *cur)
{
	struct timespec now;
	char ts[40];
	cJSON *lease = cur ? cJSON_Duplicate(cur, 1) : cJSON_CreateObject();
	cJSON *spec, *meta;
	const char *holder = jstr(jget(cur, "spec"), "holderIdentity");
	const cJSON *tr = jget(jget(cur, "spec"), "leaseTransitions");
	const char *acquire = jstr(jget(cur, "spec"), "acquireTime");
	bool same = holder && !strcmp(holder, l->identity);
	double transitions = cJSON_IsNumber(tr) ? tr->valuedouble : 0;

	if (!lease)
		return NULL;
	clock_gettime(CLOCK_REALTIME, &now);
	k8s_microtime(&now, ts, sizeof(ts));
	cJSON_DeleteItemFromObjectCaseSensitive(lease, "spec");
	cJSON_DeleteItemFromObjectCaseSensitive(lease, "status");
	if (!cur) {
		cJSON_AddStringToObject(lease, "apiVersion", "coordination.k8s.io/v1");
		cJSON_AddStringToObject(lease, "kind", "Lease");
		meta = cJSON_AddObjectToObject(lease, "metadata");
		cJSON_AddStringToObject(meta, "name", l->name);
		cJSON_AddStringToObject(meta, "namespace", l->ns);
	} else {
		meta = cJSON_GetObjectItemCaseSensitive(lease, "metadata");
		if (cJSON_IsObject(meta))
			cJSON_DeleteItemFromObjectCaseSensitive(meta, "managedFields");
	}
	spec = cJSON_AddObjectToObject(lease, "spec");
	if (!spec)
		goto err;
	cJSON_AddStringToObject(spec, "holderIdentity", l->identity);
	cJSON_AddNumberToObject(spec, "leaseDurationSeconds", (double)((l->ttl_ms + 999) / 1000));
	cJSON_AddStringToObject(spec, "acquireTime", same && acquire ? acquire : ts);
	cJSON_AddStringToObject(spec, "renewTime", ts);
	cJSON_AddNumberToObject(spec, "leaseTransitions",
				transitions + (cur && !same && holder && *holder ? 1 : 0));
	return lease;
err:
	cJSON_Delete(lease);
	return NULL;
}

static void get_done(int result, long status, const char *body, size_t len, const char *err,
		     void *arg)
{
	struct k8s_leader *l = arg;
	cJSON *cur;

	l->call = NULL;
	if (result == 0 && status == 404) {
		cJSON *lease = our_lease(l, NULL);
		if (lease) {
			write_lease(l, lease, true);
			return;
		}
		schedule(l, l->retry_ms);
		return;
	}
	if (result < 0 || status != 200) {
		log_warn(TAG, "%s: reading lease %s/%s: %s (HTTP %ld)", l->identity, l->ns, l->name,
			 result < 0 ? (err && *err ? err : strerror(-result)) : "error", status);
		schedule(l, l->retry_ms);
		return;
	}
	cur = cJSON_ParseWithLength(body, len);
	if (!cJSON_IsObject(cur)) {
		log_warn(TAG, "%s: lease %s/%s is not a JSON object", l->identity, l->ns, l->name);
		cJSON_Delete(cur);
		schedule(l, l->retry_ms);
		return;
	}
	const cJSON *spec = jget(cur, "spec");
	const char *holder = jstr(spec, "holderIdentity");
	const cJSON *dur = jget(spec, "leaseDurationSeconds");
	int64_t dur_ms = cJSON_IsNumber(dur) && dur->valuedouble > 0
				 ? (int64_t)(dur->valuedouble * 1000)
				 : (int64_t)l->ttl_ms;

	observe(l, holder, jstr(spec, "renewTime"));
	if (holder && *holder && strcmp(holder, l->identity) && mono_ms() < l->seen_at + dur_ms) {
		/* Someone else holds a live lease. */
		set_leader(l, false, "another replica holds the lease");
		log_debug(TAG, "%s: lease %s/%s held by %s", l->identity, l->ns, l->name, holder);
		cJSON_Delete(cur);
		schedule(l, l->retry_ms);
		return;
	}
	cJSON *lease = our_lease(l, cur);
	cJSON_Delete(cur);
	if (!lease) {
		schedule(l, l->retry_ms);
		return;
	}
	write_lease(l, lease, false);
}

struct k8s_leader *k8s_leader_new(struct k8s_api *api, const char *ns, const char *name,
				  const char *identity, uint32_t ttl_ms, k8s_leader_fn fn,
				  void *arg)
{
	struct k8s_leader *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->api = api;
	l->fn = fn;
	l->arg = arg;
	l->ttl_ms = ttl_ms ? ttl_ms : 30000;
	if (l->ttl_ms < 1000)
		l->ttl_ms = 1000;
	l->renew_ms = l->ttl_ms / 2;
	l->retry_ms = l->ttl_ms / 4;
	l->ns = strdup(ns);
	l->name = strdup(name);
	l->identity = strdup(identity);
	if (!l->ns || !l->name || !l->identity ||
	    asprintf(&l->coll, "/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns) < 0 ||
	    asprintf(&l->path, "%s/%s", l->coll, name) < 0) {
		k8s_leader_free(l);
		return NULL;
	}
	return l;
}

void k8s_leader_free(struct k8s_leader *l)
{
	if (!l)
		return;
	k8s_api_cancel(l->api, l->call);
	free(l->ns);
	free(l->name);
	free(l->identity);
	free(l->path);
	free(l->coll);
	free(l->seen_holder);
	free(l->seen_renew);
	cJSON_Delete(l->lease);
	free(l);
}

int64_t k8s_leader_tick(struct k8s_leader *l, int64_t now)
{
	if (l->state == L_STOPPED || l->state == L_RELEASE)
		return -1;
	if (l->leader && now - l->last_renew > (int64_t)l->renew_ms)
		set_leader(l, false, "could not renew in time");
	if (l->state != L_IDLE)
		return -1;
	if (now < l->next_try)
		return l->next_try;
	l->state = L_GET;
	l->call = k8s_api_call(l->api, "GET", l->path, NULL, NULL, 0, CALL_TIMEOUT_MS, NULL,
			       get_done, l);
	if (!l->call)
		schedule(l, l->retry_ms);
	return l->state == L_IDLE ? l->next_try : -1;
}

bool k8s_leader_is_leader(const struct k8s_leader *l)
{
	return l && l->leader;
}

static void release_done(int result, long status, const char *body, size_t len,
			 const char *err, void *arg)
{
	struct k8s_leader *l = arg;
	(void)body;
	(void)len;

	l->call = NULL;
	l->state = L_STOPPED;
	if (result == 0 && status == 200)
		log_info(TAG, "%s: released lease %s/%s", l->identity, l->ns, l->name);
	else
		log_warn(TAG, "%s: releasing lease %s/%s failed (%s, HTTP %ld): it expires by "
			      "itself",
			 l->identity, l->ns, l->name, result < 0 ? err : "", status);
}

void k8s_leader_release(struct k8s_leader *l)
{
	bool was = l->leader;

	k8s_api_cancel(l->api, l->call);
	l->call = NULL;
	l->state = L_STOPPED;
	if (!was)
		return;
	l->leader = false;
	l->fn(l->arg, false);
	if (!l->lease)
		return;
	cJSON *spec = cJSON_GetObjectItemCaseSensitive(l->lease, "spec");
	struct timespec now;
	char ts[40];
	clock_gettime(CLOCK_REALTIME, &now);
	k8s_microtime(&now, ts, sizeof(ts));
	if (!cJSON_IsObject(spec))
		return;
	cJSON_ReplaceItemInObjectCaseSensitive(spec, "holderIdentity", cJSON_CreateString(""));
	cJSON_ReplaceItemInObjectCaseSensitive(spec, "leaseDurationSeconds",
					       cJSON_CreateNumber(1));
	cJSON_ReplaceItemInObjectCaseSensitive(spec, "renewTime", cJSON_CreateString(ts));
	char *body = cJSON_PrintUnformatted(l->lease);
	if (!body)
		return;
	l->state = L_RELEASE;
	l->call = k8s_api_call(l->api, "PUT", l->path, body, "application/json", 0, 3000L, NULL,
			       release_done, l);
	free(body);
	if (!l->call)
		l->state = L_STOPPED;
}

bool k8s_leader_busy(const struct k8s_leader *l)
{
	return l && l->call != NULL;
}
