/* watch.c - line framing of watch streams and event / object parsing. */
#include "k8s/watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANN_LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

static int reserve(struct k8s_linebuf *lb, size_t need)
{
	if (need <= lb->cap)
		return 0;
	size_t cap = lb->cap ? lb->cap : 4096;
	while (cap < need)
		cap *= 2;
	char *b = realloc(lb->buf, cap);
	if (!b)
		return -ENOMEM;
	lb->buf = b;
	lb->cap = cap;
	return 0;
}

static int emit(const char *line, size_t len, k8s_line_fn fn, void *arg)
{
	if (len && line[len - 1] == '\r')
		len--;
	/* White-space-only lines (keep-alives) are not events. */
	size_t i = 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i == len)
		return 0;
	return fn(line, len, arg);
}

int k8s_linebuf_feed(struct k8s_linebuf *lb, const char *data, size_t len, k8s_line_fn fn,
		     void *arg)
{
	size_t max = lb->max ? lb->max : K8S_LINE_MAX;
	int r;

	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;

		if (lb->len + take > max) {
			lb->len = 0;
			return -E2BIG;
		}
		if (!nl) {
			/* Partial line: keep it. */
			if ((r = reserve(lb, lb->len + take)) < 0)
				return r;
			memcpy(lb->buf + lb->len, data, take);
			lb->len += take;
			return 0;
		}
		if (lb->len) {
			if (take) {
				if ((r = reserve(lb, lb->len + take)) < 0)
					return r;
				memcpy(lb->buf + lb->len, data, take);
				lb->len += take;
			}
			size_t n = lb->len;
			lb->len = 0; /* fn may fail: never replay a line */
			r = emit(lb->buf, n, fn, arg);
		} else {
			/* Whole line inside this chunk: no copy. */
			r = emit(data, take, fn, arg);
		}
		if (r < 0)
			return r;
		data += take + 1;
		len -= take + 1;
	}
	return 0;
}

void k8s_linebuf_reset(struct k8s_linebuf *lb)
{
	lb->len = 0;
}

void k8s_linebuf_free(struct k8s_linebuf *lb)
{
	free(lb->buf);
	lb->buf = NULL;
	lb->len = lb->cap = 0;
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

int k8s_watch_parse(const char *line, size_t len, struct k8s_event *ev, char *why,
		    size_t whylen)
{
	static const struct {
		const char *name;
		enum k8s_event_type type;
	} types[] = {{"ADDED", K8S_EV_ADDED},
		     {"MODIFIED", K8S_EV_MODIFIED},
		     {"DELETED", K8S_EV_DELETED},
		     {"BOOKMARK", K8S_EV_BOOKMARK},
		     {"ERROR", K8S_EV_ERROR}};
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(line, len, &end, false);
	const char *t;
	cJSON *obj;
	size_t i;

	memset(ev, 0, sizeof(*ev));
	if (!root) {
		snprintf(why, whylen, "invalid JSON");
		return -EINVAL;
	}
	while (end && end < line + len && (*end == ' ' || *end == '\t' || *end == '\r'))
		end++;
	if (end && end < line + len) {
		snprintf(why, whylen, "data after the JSON value");
		goto err;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(why, whylen, "event is not a JSON object");
		goto err;
	}
	t = jstr(root, "type");
	if (!t) {
		snprintf(why, whylen, "event without type");
		goto err;
	}
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(t, types[i].name))
			break;
	if (i == sizeof(types) / sizeof(types[0])) {
		snprintf(why, whylen, "unknown event type \"%.32s\"", t);
		goto err;
	}
	obj = cJSON_DetachItemFromObjectCaseSensitive(root, "object");
	if (!cJSON_IsObject(obj)) {
		cJSON_Delete(obj);
		snprintf(why, whylen, "%s event without an object", types[i].name);
		goto err;
	}
	cJSON_Delete(root);
	ev->type = types[i].type;
	ev->object = obj;
	ev->rv = k8s_object_rv(obj);
	if (ev->type == K8S_EV_ERROR) {
		const cJSON *code = jget(obj, "code");
		if (cJSON_IsNumber(code) && code->valuedouble >= 0 && code->valuedouble < 1000)
			ev->code = (int)code->valuedouble;
	}
	return 0;
err:
	cJSON_Delete(root);
	return -EINVAL;
}

const char *k8s_object_check(const cJSON *obj, bool namespaced)
{
	const cJSON *meta = jget(obj, "metadata");
	const char *name = jstr(meta, "name"), *ns = jstr(meta, "namespace");

	if (!cJSON_IsObject(obj))
		return "not a JSON object";
	if (!cJSON_IsObject(meta))
		return "metadata missing or not an object";
	if (!name || !*name)
		return "metadata.name missing or not a string";
	if (namespaced && (!ns || !*ns))
		return "metadata.namespace missing or not a string";
	return NULL;
}

const char *k8s_object_id(const cJSON *obj, char *buf, size_t len)
{
	const cJSON *meta = jget(obj, "metadata");
	const char *name = jstr(meta, "name"), *ns = jstr(meta, "namespace");

	if (ns && *ns)
		snprintf(buf, len, "%.100s/%.200s", ns, name && *name ? name : "?");
	else
		snprintf(buf, len, "%.200s", name && *name ? name : "?");
	return buf;
}

/* Sets obj[key] to the string val, replacing what was there. */
static int set_str(cJSON *obj, const char *key, const char *val)
{
	cJSON *s = cJSON_CreateString(val);
	if (!s)
		return -ENOMEM;
	if (cJSON_GetObjectItemCaseSensitive(obj, key))
		return cJSON_ReplaceItemInObjectCaseSensitive(obj, key, s) ? 0 : -ENOMEM;
	return cJSON_AddItemToObject(obj, key, s) ? 0 : -ENOMEM;
}

int k8s_object_trim(cJSON *obj, const char *kind, const char *api_version)
{
	cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	int r;

	if ((r = set_str(obj, "kind", kind)) < 0 || (r = set_str(obj, "apiVersion", api_version)) < 0)
		return r;
	if (cJSON_IsObject(meta)) {
		cJSON_DeleteItemFromObjectCaseSensitive(meta, "managedFields");
		cJSON *ann = cJSON_GetObjectItemCaseSensitive(meta, "annotations");
		if (cJSON_IsObject(ann))
			cJSON_DeleteItemFromObjectCaseSensitive(ann, ANN_LAST_APPLIED);
	}
	return 0;
}

const char *k8s_object_rv(const cJSON *obj)
{
	const char *rv = jstr(jget(obj, "metadata"), "resourceVersion");
	return rv && *rv ? rv : NULL;
}
