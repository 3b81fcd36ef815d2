/* ingclass.c - Ingress class selection (same rules as translate.c). */
#include "k8s/ingclass.h"

#include <string.h>

#define ANN_CLASS "kubernetes.io/ingress.class"
#define ANN_DEFAULT_CLASS "ingressclass.kubernetes.io/is-default-class"

static const cJSON *jget(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *j = jget(o, key);
	return cJSON_IsString(j) && j->valuestring ? j->valuestring : NULL;
}

static bool streq(const char *a, const char *b)
{
	return a && b && !strcmp(a, b);
}

static bool class_is_ours(const struct k8s_class_options *o, const cJSON *ic)
{
	return streq(jstr(jget(ic, "spec"), "controller"), o->controller_class);
}

bool k8s_have_default_class(const struct k8s_store *s, const struct k8s_class_options *o)
{
	size_t n;
	const struct k8s_object *v = k8s_store_list(s, "IngressClass", &n);

	for (size_t i = 0; i < n; i++) {
		const cJSON *d = jget(jget(jget(v[i].obj, "metadata"), "annotations"),
				      ANN_DEFAULT_CLASS);
		bool is_default = cJSON_IsTrue(d) || (cJSON_IsString(d) && streq(d->valuestring,
										   "true"));
		if (is_default && class_is_ours(o, v[i].obj))
			return true;
	}
	return false;
}

bool k8s_ingress_is_ours(const struct k8s_store *s, const struct k8s_class_options *o,
			 const cJSON *ingress, bool have_default)
{
	const char *cls = jstr(jget(ingress, "spec"), "ingressClassName");
	const char *ann = jstr(jget(jget(ingress, "metadata"), "annotations"), ANN_CLASS);

	if (cls && *cls) {
		if (streq(cls, o->ingress_class))
			return true;
		const struct k8s_object *ic = k8s_store_get(s, "IngressClass", "", cls);
		return ic && class_is_ours(o, ic->obj);
	}
	if (ann && *ann)
		return streq(ann, o->ingress_class);
	return o->watch_without_class || have_default;
}
