/* tlsconfig.c - Ingress spec.tls into the snapshot builder. */
#include "k8s/tlsconfig.h"

#include "core/log.h"
#include "k8s/kubeconfig.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define ANN "nginx.ingress.kubernetes.io/"

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Decodes Secret data key into a malloc'd buffer. */
static unsigned char *secret_field(const cJSON *data, const char *key, size_t *len)
{
	const char *v = str(data, key);
	char *out = NULL;
	if (!v || k8s_base64_decode(v, strlen(v), &out, len) < 0 || !*len) {
		free(out);
		return NULL;
	}
	return (unsigned char *)out;
}

/* Adds Secret ns/name as a certificate for hosts (none: the default).
 * Returns 1, 0 (logged) or -ENOMEM. */
static int add_secret(const struct k8s_store *s, const char *ns, const char *secret,
		      const char *const *hosts, size_t nh, struct snapshot_builder *b,
		      const char *ctx)
{
	const struct k8s_object *sec = k8s_store_get(s, "Secret", ns, secret);
	const char *why = NULL;
	const cJSON *data = sec ? cJSON_GetObjectItemCaseSensitive(sec->obj, "data") : NULL;
	const char *type = sec ? str(sec->obj, "type") : NULL;
	size_t clen = 0, klen = 0;
	unsigned char *crt = NULL, *key = NULL;
	int r = 0;

	if (!sec)
		why = "not found";
	else if (type && strcmp(type, "kubernetes.io/tls"))
		why = "not of type kubernetes.io/tls";
	else if (!(crt = secret_field(data, "tls.crt", &clen)))
		why = "tls.crt missing or not base64";
	else if (!(key = secret_field(data, "tls.key", &klen)))
		why = "tls.key missing or not base64";
	if (why) {
		log_warn("k8s", "%s: secret %s/%s %s; %s the default certificate", ctx, ns, secret,
			 why, nh ? "its hosts get" : "keeping");
	} else {
		char name[512];
		snprintf(name, sizeof(name), "%s/%s", ns, secret);
		r = snapshot_add_tls(b, name, hosts, nh, (const char *)crt, clen, (const char *)key,
				     klen) < 0
			    ? -ENOMEM
			    : 1;
	}
	free(crt);
	free(key);
	return r;
}

int k8s_tls_add_default(const struct k8s_store *s, const char *ns_name,
			struct snapshot_builder *b)
{
	char ns[256];
	const char *slash = strchr(ns_name, '/');
	if (!slash || slash == ns_name || !slash[1] || (size_t)(slash - ns_name) >= sizeof(ns)) {
		log_warn("k8s", "--default-ssl-certificate %s: expected NAMESPACE/NAME", ns_name);
		return 0;
	}
	memcpy(ns, ns_name, (size_t)(slash - ns_name));
	ns[slash - ns_name] = 0;
	return add_secret(s, ns, slash + 1, NULL, 0, b, "--default-ssl-certificate");
}

static void set_redirect(struct snapshot_builder *b, const char *host)
{
	if (host && *host && snapshot_set_host_flags(b, host, SNAP_HOST_SSL_REDIRECT) < 0)
		log_debug("k8s", "host %s: no redirect (invalid host)", host);
}

int k8s_tls_add_ingress(const struct k8s_store *s, const struct k8s_object *ing,
			struct snapshot_builder *b)
{
	const cJSON *spec = cJSON_GetObjectItemCaseSensitive(ing->obj, "spec");
	const cJSON *tls = cJSON_GetObjectItemCaseSensitive(spec, "tls");
	const cJSON *anns = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(ing->obj, "metadata"), "annotations");
	const char *redir = str(anns, ANN "ssl-redirect");
	const char *force = str(anns, ANN "force-ssl-redirect");
	bool redirect = !(redir && !strcmp(redir, "false"));
	const cJSON *e;
	int added = 0;

	if (force && !strcmp(force, "true")) {
		const cJSON *rule;
		cJSON_ArrayForEach(rule, cJSON_GetObjectItemCaseSensitive(spec, "rules"))
			set_redirect(b, str(rule, "host"));
	}
	if (!cJSON_IsArray(tls))
		return 0;
	cJSON_ArrayForEach(e, tls)
	{
		const cJSON *jh = cJSON_GetObjectItemCaseSensitive(e, "hosts");
		const char *secret = str(e, "secretName");
		const char *hosts[64];
		size_t nh = 0;
		const cJSON *h;
		cJSON_ArrayForEach(h, jh)
		{
			if (cJSON_IsString(h) && nh < sizeof(hosts) / sizeof(hosts[0]))
				hosts[nh++] = h->valuestring;
		}
		if (redirect)
			for (size_t i = 0; i < nh; i++)
				set_redirect(b, hosts[i]);
		if (!secret || !*secret) {
			/* No secretName: the hosts use the default certificate. */
			continue;
		}
		char ctx[600];
		snprintf(ctx, sizeof(ctx), "ingress %s/%s", ing->ns, ing->name);
		int r = add_secret(s, ing->ns, secret, hosts, nh, b, ctx);
		if (r < 0)
			return r;
		added += r;
	}
	return added;
}
