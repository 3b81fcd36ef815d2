/* annotations.c - per-Ingress annotations that shape a backend. */
#include "k8s/annotations.h"

#include "core/log.h"
#include "core/units.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char *ann(const cJSON *a, const char *key)
{
	char full[128];
	snprintf(full, sizeof(full), "%s%s", K8S_ANN_PREFIX, key);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, full);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ingress-nginx writes timeouts as whole seconds ("60"); "500ms" and "5m"
 * are accepted too. */
static int timeout(const cJSON *a, const char *key, const char *ns, const char *name,
		   uint32_t *out)
{
	const char *v = ann(a, key);
	uint64_t ms;

	if (!v)
		return 0;
	if (units_parse_duration(v, &ms) < 0 || !ms || ms > 24ull * 3600 * 1000) {
		log_warn("k8s", "ingress %s/%s: annotation %s%s: \"%s\" is not a duration in "
				"seconds, ignored",
			 ns, name, K8S_ANN_PREFIX, key, v);
		return 0;
	}
	*out = (uint32_t)ms;
	return 1;
}

static int hash_by(const char *v, struct snap_backend_opts *o)
{
	const char *key = NULL;
	size_t n;

	if (!strcmp(v, "$remote_addr") || !strcmp(v, "$binary_remote_addr")) {
		o->hash_src = SNAP_HASH_REMOTE_ADDR;
	} else if (!strcmp(v, "$request_uri")) {
		o->hash_src = SNAP_HASH_URI;
	} else if (!strncmp(v, "$http_", 6)) {
		o->hash_src = SNAP_HASH_HEADER;
		key = v + 6;
	} else if (!strncmp(v, "$cookie_", 8)) {
		o->hash_src = SNAP_HASH_COOKIE;
		key = v + 8;
	} else {
		return -1;
	}
	if (key) {
		n = strlen(key);
		if (!n || n >= sizeof(o->hash_key))
			return -1;
		for (size_t i = 0; i < n; i++) {
			char c = key[i];
			if (!isalnum((unsigned char)c) && c != '_' && c != '-')
				return -1;
			/* $http_x_user names the header X-User. */
			o->hash_key[i] = o->hash_src == SNAP_HASH_HEADER
						 ? (c == '_' ? '-' : (char)tolower((unsigned char)c))
						 : c;
		}
		o->hash_key[n] = 0;
	}
	o->lb = SNAP_LB_HASH;
	return 0;
}

int k8s_annotations_backend_opts(const cJSON *a, const char *ns, const char *name,
				 struct snap_backend_opts *o)
{
	int n = 0;
	const char *v;

	memset(o, 0, sizeof(*o));
	if (!cJSON_IsObject(a))
		return 0;
	if ((v = ann(a, "load-balance"))) {
		if (!strcmp(v, "round_robin"))
			o->lb = SNAP_LB_ROUND_ROBIN;
		else if (!strcmp(v, "ewma"))
			o->lb = SNAP_LB_EWMA;
		else if (!strcmp(v, "least_request") || !strcmp(v, "least_conn"))
			o->lb = SNAP_LB_LEAST_REQUEST;
		else
			log_warn("k8s", "ingress %s/%s: annotation %sload-balance: \"%s\" is not "
					"round_robin, ewma or least_request, ignored",
				 ns, name, K8S_ANN_PREFIX, v);
		n += o->lb != 0;
	}
	if ((v = ann(a, "upstream-hash-by"))) {
		struct snap_backend_opts h = *o;
		if (hash_by(v, &h) < 0) {
			log_warn("k8s", "ingress %s/%s: annotation %supstream-hash-by: \"%s\" is not "
					"$remote_addr, $request_uri, $http_NAME or $cookie_NAME, "
					"ignored",
				 ns, name, K8S_ANN_PREFIX, v);
		} else {
			*o = h; /* hashing wins over load-balance, as in ingress-nginx */
			n++;
		}
	}
	n += timeout(a, "proxy-connect-timeout", ns, name, &o->connect_timeout_ms);
	n += timeout(a, "proxy-read-timeout", ns, name, &o->read_timeout_ms);
	n += timeout(a, "proxy-send-timeout", ns, name, &o->send_timeout_ms);
	return n;
}

void k8s_annotations_suffix(const struct snap_backend_opts *o, char *buf, size_t cap)
{
	int n = 0;

	buf[0] = 0;
	if (o->lb && n >= 0 && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n, "|lb=%u", o->lb);
	if (o->lb == SNAP_LB_HASH && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n, "|hash=%u:%s", o->hash_src, o->hash_key);
	if (o->connect_timeout_ms && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n, "|ct=%u", o->connect_timeout_ms);
	if (o->read_timeout_ms && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n, "|rt=%u", o->read_timeout_ms);
	if (o->send_timeout_ms && (size_t)n < cap)
		snprintf(buf + n, cap - (size_t)n, "|st=%u", o->send_timeout_ms);
}
