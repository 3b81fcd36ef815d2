/* translate.c - Ingress, IngressClass, Service and EndpointSlice objects to
 * snapshot builder calls.
 *
 * Which Ingresses are ours (in this order):
 *  1. spec.ingressClassName set: ours when it equals --ingress-class (even
 *     without an IngressClass object), or names an IngressClass whose
 *     spec.controller equals --controller-class;
 *  2. else annotation kubernetes.io/ingress.class set: ours when it equals
 *     --ingress-class;
 *  3. else (no class at all): ours when --watch-ingress-without-class is set
 *     or one of our IngressClasses carries the annotation
 *     ingressclass.kubernetes.io/is-default-class: "true".
 * Other Ingresses are ignored (debug log).
 *
 * Order: oldest metadata.creationTimestamp first (missing timestamps last),
 * then namespace/name. The builder keeps the first rule for a given
 * (host, path, pathType), so the oldest Ingress wins a conflict; later ones
 * are counted and logged at info level.
 *
 * Rules: rules[].host (optional, "*.foo.com" allowed) and http.paths[] with
 * path (default "/", must start with '/') and pathType Exact, Prefix or
 * ImplementationSpecific (= Prefix; a missing pathType is treated as
 * ImplementationSpecific). spec.defaultBackend adds Prefix "/" for every
 * host of its Ingress (after its rules, so explicit paths win) and becomes
 * the snapshot's catch-all when it is the oldest one. backend.resource is
 * not supported (skipped with a warning).
 *
 * Backends: backend.service {name, port {number | name}} names a Service of
 * the Ingress's namespace and one of its spec.ports (by .port or .name). Its
 * endpoints come from the EndpointSlices labelled
 * kubernetes.io/service-name=<service> in that namespace: the slice port
 * whose name equals the Service port's name ("" when unnamed) gives the
 * port; a slice without ports uses the Service port's numeric targetPort
 * (default: the port itself). Endpoints whose conditions.ready is false are
 * left out (absent means ready); addressType FQDN is skipped. A missing
 * Service, port or slice gives a backend without endpoints (503), with a
 * warning. Backends are named "namespace/service:port". */
#include "k8s/translate.h"

#include "core/log.h"
#include "k8s/endpoints.h"
#include "k8s/sliceindex.h"
#include "k8s/annotations.h"
#include "k8s/ingclass.h"
#include "k8s/tlsconfig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG "k8s"
#define LABEL_SERVICE "kubernetes.io/service-name"

struct tr {
	const struct k8s_store *s;
	const struct k8s_class_options *o;
	struct k8s_translate_stats *st;
	struct snapshot_builder *b;
	struct k8s_slice_index *slices; /* EndpointSlices by (namespace, Service) */
	unsigned char *resolved; /* by backend id: endpoints already added */
	size_t resolved_cap;
	const char *ns, *name; /* Ingress being translated, for logs */
	struct snap_backend_opts opts; /* from its annotations */
	char opts_suffix[160];
};

/* ---- cJSON helpers that never trust the input's types ------------------- */

static const cJSON *jget(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

/* Returns j when it is an array, else NULL (to iterate safely). */
static const cJSON *jarr(const cJSON *j)
{
	return cJSON_IsArray(j) ? j : NULL;
}

/* Returns the string under key, or NULL when absent or not a string. */
static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *j = jget(o, key);
	return cJSON_IsString(j) && j->valuestring ? j->valuestring : NULL;
}

/* Returns a port number 1..65535 under key, or 0. */
static int jport(const cJSON *o, const char *key)
{
	const cJSON *j = jget(o, key);
	double d;

	if (!cJSON_IsNumber(j))
		return 0;
	d = j->valuedouble;
	if (d < 1 || d > 65535 || d != (double)(int)d)
		return 0;
	return (int)d;
}

static bool streq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

/* ---- class selection: the rules live in ingclass.c ------------------------- */

static bool ingress_is_ours(const struct tr *t, const struct k8s_object *ing, bool dflt)
{
	if (k8s_ingress_is_ours(t->s, t->o, ing->obj, dflt))
		return true;
	log_debug(TAG, "ingress %s/%s: not of our class, ignored", ing->ns, ing->name);
	return false;
}

/* Oldest first; missing timestamps last; then namespace/name. */
static int ingress_cmp(const void *a, const void *b)
{
	const struct k8s_object *x = *(const struct k8s_object *const *)a;
	const struct k8s_object *y = *(const struct k8s_object *const *)b;
	const char *tx = jstr(jget(x->obj, "metadata"), "creationTimestamp");
	const char *ty = jstr(jget(y->obj, "metadata"), "creationTimestamp");
	int c;

	if (tx && !*tx)
		tx = NULL;
	if (ty && !*ty)
		ty = NULL;
	if (tx && ty && (c = strcmp(tx, ty)))
		return c;
	if (!tx != !ty)
		return tx ? -1 : 1;
	if ((c = strcmp(x->ns, y->ns)))
		return c;
	return strcmp(x->name, y->name);
}

/* ---- backends --------------------------------------------------------------- */

/* Adds the endpoints of one slice; returns how many, or -ENOMEM. */
static int add_slice(struct tr *t, int id, const struct k8s_object *sl, const char *bname,
		     const char *port_name, int target_port, enum k8s_endpoint_use want)
{
	const char *atype = jstr(sl->obj, "addressType");
	const cJSON *ports = jget(sl->obj, "ports");
	const cJSON *eps = jget(sl->obj, "endpoints");
	int family, port = 0, added = 0;

	if (streq(atype, "IPv4")) {
		family = AF_INET;
	} else if (streq(atype, "IPv6")) {
		family = AF_INET6;
	} else {
		log_debug(TAG, "endpointslice %s/%s: addressType %s skipped", sl->ns, sl->name,
			  atype ? atype : "(none)");
		return 0;
	}
	if (cJSON_IsArray(ports) && cJSON_GetArraySize(ports) > 0) {
		const cJSON *p;
		cJSON_ArrayForEach(p, ports)
		{
			const char *pn = jstr(p, "name");
			if (streq(pn ? pn : "", port_name)) {
				port = jport(p, "port");
				break;
			}
		}
		if (!port) {
			log_debug(TAG, "endpointslice %s/%s: no port named \"%s\" for %s", sl->ns,
				  sl->name, port_name, bname);
			return 0;
		}
	} else if (target_port) {
		port = target_port;
	} else {
		log_warn(TAG, "endpointslice %s/%s: no ports and a named targetPort, %s skipped it",
			 sl->ns, sl->name, bname);
		return 0;
	}

	const cJSON *ep;
	cJSON_ArrayForEach(ep, jarr(eps))
	{
		const cJSON *addrs = jget(ep, "addresses");
		const cJSON *a;

		if (k8s_endpoint_use(ep) != want)
			continue;
		cJSON_ArrayForEach(a, jarr(addrs))
		{
			union {
				struct sockaddr sa;
				struct sockaddr_in in;
				struct sockaddr_in6 in6;
			} u;
			socklen_t len;
			int ok, r;

			memset(&u, 0, sizeof(u));
			if (!cJSON_IsString(a))
				continue;
			if (family == AF_INET) {
				u.in.sin_family = AF_INET;
				u.in.sin_port = htons((uint16_t)port);
				ok = inet_pton(AF_INET, a->valuestring, &u.in.sin_addr);
				len = sizeof(u.in);
			} else {
				u.in6.sin6_family = AF_INET6;
				u.in6.sin6_port = htons((uint16_t)port);
				ok = inet_pton(AF_INET6, a->valuestring, &u.in6.sin6_addr);
				len = sizeof(u.in6);
			}
			if (ok != 1) {
				log_warn(TAG, "endpointslice %s/%s: bad %s address \"%s\", skipped",
					 sl->ns, sl->name, atype, a->valuestring);
				continue;
			}
			r = snapshot_add_endpoint(t->b, id, &u.sa, len);
			if (r == -ENOMEM)
				return r;
			if (r == 0)
				added++;
		}
	}
	return added;
}

/* Resolves Service svc, port (number or name) of the current Ingress's
 * namespace into endpoints of backend id. Returns 0 or -ENOMEM. */
static int resolve_endpoints(struct tr *t, int id, const char *bname, const char *svc,
			     int number, const char *pname)
{
	const struct k8s_object *so = k8s_store_get(t->s, "Service", t->ns, svc);
	const cJSON *sp = NULL, *p;
	size_t n;
	int nslices = 0, added = 0;

	if (!so) {
		log_warn(TAG, "ingress %s/%s: service %s/%s not found, %s has no endpoints",
			 t->ns, t->name, t->ns, svc, bname);
		goto unresolved;
	}
	const cJSON *spec = jget(so->obj, "spec");
	if (streq(jstr(spec, "type"), "ExternalName")) {
		log_warn(TAG, "ingress %s/%s: service %s/%s is ExternalName (not supported), %s "
			      "has no endpoints",
			 t->ns, t->name, t->ns, svc, bname);
		goto unresolved;
	}
	const cJSON *ports = jget(spec, "ports");
	cJSON_ArrayForEach(p, jarr(ports))
	{
		if ((number && jport(p, "port") == number) ||
		    (pname && streq(jstr(p, "name"), pname))) {
			sp = p;
			break;
		}
	}
	if (!sp) {
		log_warn(TAG, "ingress %s/%s: service %s/%s has no port %s, %s has no endpoints",
			 t->ns, t->name, t->ns, svc, strrchr(bname, ':') + 1, bname);
		goto unresolved;
	}
	const char *sp_name = jstr(sp, "name");
	const cJSON *tp = jget(sp, "targetPort");
	int target = cJSON_IsString(tp) ? 0 : cJSON_IsNumber(tp) ? jport(sp, "targetPort")
								 : jport(sp, "port");

	/* Ready endpoints; only when there is none, the serving+terminating ones. */
	const struct k8s_object *const *sl = k8s_slice_index_find(t->slices, t->ns, svc, &n);
	nslices = (int)n;
	for (int pass = 0; pass < 2 && !added; pass++) {
		for (size_t i = 0; i < n; i++) {
			int r = add_slice(t, id, sl[i], bname, sp_name ? sp_name : "", target,
					  pass ? K8S_EP_FALLBACK : K8S_EP_READY);
			if (r < 0)
				return r;
			added += r;
		}
		if (pass && added)
			log_info(TAG, "ingress %s/%s: %s has no ready endpoints, using %d terminating "
				      "ones",
				 t->ns, t->name, bname, added);
	}
	if (!nslices) {
		log_warn(TAG, "ingress %s/%s: no EndpointSlice for service %s/%s, %s has no "
			      "endpoints",
			 t->ns, t->name, t->ns, svc, bname);
		goto unresolved;
	}
	if (!added) {
		log_info(TAG, "ingress %s/%s: %s has no ready endpoints", t->ns, t->name, bname);
		goto unresolved;
	}
	return 0;

unresolved:
	t->st->unresolved++;
	return 0;
}

/* Returns the backend id of an Ingress backend, -EINVAL when it is invalid
 * (logged) or -ENOMEM. */
static int resolve_backend(struct tr *t, const cJSON *be, const char *where)
{
	const cJSON *svc = jget(be, "service");
	const cJSON *port = jget(svc, "port");
	const char *sname = jstr(svc, "name"), *pname = jstr(port, "name");
	int number = jport(port, "number");
	char bname[512];
	int id, r;

	if (jget(be, "resource")) {
		log_warn(TAG, "ingress %s/%s: %s: backend.resource is not supported, skipped",
			 t->ns, t->name, where);
		return -EINVAL;
	}
	if (!sname || !*sname || (!number && (!pname || !*pname))) {
		log_warn(TAG, "ingress %s/%s: %s: backend.service needs a name and a port number "
			      "or name, skipped",
			 t->ns, t->name, where);
		return -EINVAL;
	}
	if (number)
		pname = NULL;
	/* Annotations make a backend of their own: the same Service port with
	 * other options is another backend. */
	if (number)
		snprintf(bname, sizeof(bname), "%s/%s:%d%s", t->ns, sname, number, t->opts_suffix);
	else
		snprintf(bname, sizeof(bname), "%s/%s:%s%s", t->ns, sname, pname, t->opts_suffix);
	id = snapshot_add_backend(t->b, bname);
	if (id < 0)
		return id;
	if (t->opts_suffix[0])
		snapshot_set_backend_opts(t->b, id, &t->opts);
	if ((size_t)id >= t->resolved_cap) {
		size_t cap = t->resolved_cap ? t->resolved_cap * 2 : 64;
		while (cap <= (size_t)id)
			cap *= 2;
		unsigned char *v = realloc(t->resolved, cap);
		if (!v)
			return -ENOMEM;
		memset(v + t->resolved_cap, 0, cap - t->resolved_cap);
		t->resolved = v;
		t->resolved_cap = cap;
	}
	if (t->resolved[id])
		return id;
	t->resolved[id] = 1;
	t->st->backends++;
	r = resolve_endpoints(t, id, bname, sname, number, pname);
	return r < 0 ? r : id;
}

/* ---- rules ------------------------------------------------------------------- */

/* Adds one rule; returns 0 or -ENOMEM. */
static int add_route(struct tr *t, const char *host, const char *path, enum snap_path_type type,
		     int id, bool quiet_conflict)
{
	int r = snapshot_add_route(t->b, host, path, type, id);

	if (r == 0) {
		t->st->routes++;
	} else if (r == -EEXIST) {
		if (!quiet_conflict) {
			t->st->conflicts++;
			log_info(TAG, "ingress %s/%s: %s%s %s already routed by an older Ingress",
				 t->ns, t->name, host ? host : "*", path,
				 type == SNAP_PATH_EXACT ? "(Exact)" : "(Prefix)");
		}
	} else if (r == -EINVAL) {
		t->st->skipped++;
		log_warn(TAG, "ingress %s/%s: invalid host \"%s\" or path \"%s\", skipped", t->ns,
			 t->name, host ? host : "", path);
	} else {
		return r;
	}
	return 0;
}

static int add_path(struct tr *t, const char *host, const cJSON *p, unsigned ri, unsigned pi)
{
	const cJSON *jpath = jget(p, "path");
	const char *path = cJSON_IsString(jpath) ? jpath->valuestring : "/";
	const cJSON *jtype = jget(p, "pathType");
	const char *type = cJSON_IsString(jtype) ? jtype->valuestring : NULL;
	char where[64];
	enum snap_path_type pt;
	const char *why = NULL;

	snprintf(where, sizeof(where), "rules[%u].http.paths[%u]", ri, pi);
	if (!cJSON_IsObject(p))
		why = "not a mapping";
	else if (jpath && !cJSON_IsString(jpath) && !cJSON_IsNull(jpath))
		why = "path is not a string";
	else if (path[0] != '/')
		why = "path must start with '/'";
	else if (jtype && !cJSON_IsNull(jtype) && !type)
		why = "pathType is not a string";
	if (why) {
		t->st->skipped++;
		log_warn(TAG, "ingress %s/%s: %s: %s, skipped", t->ns, t->name, where, why);
		return 0;
	}
	if (!type || !strcmp(type, "Prefix") || !strcmp(type, "ImplementationSpecific")) {
		pt = SNAP_PATH_PREFIX;
	} else if (!strcmp(type, "Exact")) {
		pt = SNAP_PATH_EXACT;
	} else {
		t->st->skipped++;
		log_warn(TAG, "ingress %s/%s: %s: invalid pathType \"%s\", skipped", t->ns, t->name,
			 where, type);
		return 0;
	}
	int id = resolve_backend(t, jget(p, "backend"), where);
	if (id == -EINVAL) {
		t->st->skipped++;
		return 0;
	}
	if (id < 0)
		return id;
	return add_route(t, host, path, pt, id, false);
}

static int add_ingress(struct tr *t, const struct k8s_object *ing)
{
	const cJSON *spec = jget(ing->obj, "spec");
	const cJSON *rules = jget(spec, "rules");
	const cJSON *dflt = jget(spec, "defaultBackend");
	const cJSON *rule;
	unsigned ri = 0;
	int r;

	t->ns = ing->ns;
	t->name = ing->name;
	if (k8s_tls_add_ingress(t->s, ing, t->b) == -ENOMEM)
		return -ENOMEM;
	k8s_annotations_backend_opts(jget(jget(ing->obj, "metadata"), "annotations"), t->ns, t->name,
				     &t->opts);
	k8s_annotations_suffix(&t->opts, t->opts_suffix, sizeof(t->opts_suffix));
	if (!cJSON_IsObject(spec)) {
		log_warn(TAG, "ingress %s/%s: spec missing or not a mapping, skipped", t->ns,
			 t->name);
		t->st->skipped++;
		return 0;
	}
	if (rules && !cJSON_IsArray(rules) && !cJSON_IsNull(rules)) {
		log_warn(TAG, "ingress %s/%s: spec.rules is not a list, skipped", t->ns, t->name);
		t->st->skipped++;
		rules = NULL;
	}
	cJSON_ArrayForEach(rule, jarr(rules))
	{
		const cJSON *jhost = jget(rule, "host");
		const cJSON *paths = jget(jget(rule, "http"), "paths");
		const cJSON *p;
		unsigned pi = 0;

		if (!cJSON_IsObject(rule) || (jhost && !cJSON_IsString(jhost) &&
					      !cJSON_IsNull(jhost))) {
			log_warn(TAG, "ingress %s/%s: rules[%u]: not a mapping or host not a string, "
				      "skipped",
				 t->ns, t->name, ri);
			t->st->skipped++;
			ri++;
			continue;
		}
		const char *host = cJSON_IsString(jhost) ? jhost->valuestring : NULL;
		cJSON_ArrayForEach(p, jarr(paths))
		{
			if ((r = add_path(t, host, p, ri, pi++)) < 0)
				return r;
		}
		ri++;
	}
	if (!dflt || cJSON_IsNull(dflt))
		return 0;

	int id = resolve_backend(t, dflt, "defaultBackend");
	if (id == -EINVAL) {
		t->st->skipped++;
		return 0;
	}
	if (id < 0)
		return id;
	cJSON_ArrayForEach(rule, jarr(rules))
	{
		const char *host = jstr(rule, "host");
		if (host && *host && (r = add_route(t, host, "/", SNAP_PATH_PREFIX, id, true)) < 0)
			return r;
	}
	if (snapshot_set_default_backend(t->b, id) == -EEXIST)
		log_debug(TAG, "ingress %s/%s: an older Ingress has the default backend", t->ns,
			  t->name);
	return 0;
}

struct snapshot_builder *k8s_translate(const struct k8s_store *s,
				       const struct k8s_class_options *o,
				       struct k8s_translate_stats *stats)
{
	struct k8s_translate_stats scratch;
	struct tr t = {.s = s, .o = o, .st = stats ? stats : &scratch};
	const struct k8s_object **ours = NULL;
	size_t n, nours = 0;
	const struct k8s_object *ing = k8s_store_list(s, "Ingress", &n);

	*t.st = (struct k8s_translate_stats){0};
	t.b = snapshot_builder_new();
	if (!t.b)
		return NULL;
	t.slices = k8s_slice_index_new(s);
	if (!t.slices)
		goto err;
	if (n && !(ours = malloc(n * sizeof(*ours))))
		goto err;
	bool dflt = k8s_have_default_class(s, o);
	for (size_t i = 0; i < n; i++) {
		if (ingress_is_ours(&t, &ing[i], dflt))
			ours[nours++] = &ing[i];
		else
			t.st->ignored++;
	}
	if (nours > 1)
		qsort(ours, nours, sizeof(*ours), ingress_cmp);
	for (size_t i = 0; i < nours; i++) {
		t.st->ingresses++;
		if (add_ingress(&t, ours[i]) < 0)
			goto err;
	}
	if (o->default_ssl_certificate &&
	    k8s_tls_add_default(s, o->default_ssl_certificate, t.b) == -ENOMEM)
		goto err;
	free(ours);
	free(t.resolved);
	k8s_slice_index_free(t.slices);
	return t.b;

err:
	log_error(TAG, "translate: out of memory");
	free(ours);
	free(t.resolved);
	k8s_slice_index_free(t.slices);
	snapshot_builder_free(t.b);
	return NULL;
}

struct snapshot_builder *k8s_translate_endpoints(const struct k8s_store *s,
						 const struct snapshot *prev,
						 const char *const *services, size_t nservices,
						 struct k8s_translate_stats *stats)
{
	struct k8s_translate_stats scratch;
	struct k8s_class_options none = {0};
	struct tr t = {.s = s, .o = &none, .st = stats ? stats : &scratch};

	*t.st = (struct k8s_translate_stats){0};
	t.b = snapshot_builder_new();
	t.slices = !t.b ? NULL
		   : services ? k8s_slice_index_new_only(s, services, nservices)
			      : k8s_slice_index_new(s);
	if (!t.slices)
		goto err;
	t.name = "(endpoints update)";
	for (uint32_t i = 0; i < prev->nbackends; i++) {
		const struct snap_backend *pb = &prev->backends[i];
		/* "namespace/service:port" plus an options suffix "|...". */
		char ns[256], svc[256], port[256];
		const char *slash = strchr(pb->name, '/');
		const char *colon = slash ? strchr(slash, ':') : NULL;
		if (!slash || !colon || (size_t)(slash - pb->name) >= sizeof(ns) ||
		    (size_t)(colon - slash - 1) >= sizeof(svc))
			goto err;
		size_t pl = strcspn(colon + 1, "|");
		if (pl >= sizeof(port) || !pl)
			goto err;
		memcpy(ns, pb->name, (size_t)(slash - pb->name));
		ns[slash - pb->name] = 0;
		memcpy(svc, slash + 1, (size_t)(colon - slash - 1));
		svc[colon - slash - 1] = 0;
		memcpy(port, colon + 1, pl);
		port[pl] = 0;
		int id = snapshot_add_backend(t.b, pb->name);
		if (id != (int)i)
			goto err;
		if (pb->opts.lb || pb->opts.connect_timeout_ms || pb->opts.read_timeout_ms ||
		    pb->opts.send_timeout_ms)
			snapshot_set_backend_opts(t.b, id, &pb->opts);
		if (services) {
			/* Unchanged Service: its endpoints as they were. */
			char key[520];
			bool changed = false;
			snprintf(key, sizeof(key), "%s/%s", ns, svc);
			for (size_t k = 0; k < nservices && !changed; k++)
				changed = !strcmp(services[k], key);
			if (!changed) {
				if (snapshot_set_endpoints(t.b, id, pb->endpoints, pb->nendpoints) < 0)
					goto err;
				continue;
			}
		}
		char *end;
		long number = strtol(port, &end, 10);
		t.ns = ns;
		t.st->backends++;
		if (resolve_endpoints(&t, id, pb->name, svc, *end ? 0 : (int)number,
				      *end ? port : NULL) < 0)
			goto err;
	}
	k8s_slice_index_free(t.slices);
	return t.b;
err:
	k8s_slice_index_free(t.slices);
	snapshot_builder_free(t.b);
	return NULL;
}
