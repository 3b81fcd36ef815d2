/* manifests.c - reading manifest files into the object store.
 * The failure policy is described in manifests.h. */
#include "k8s/manifests.h"

#include "core/log.h"
#include "k8s/yaml.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define TAG "manifests"
#define MANIFEST_MAX_BYTES (64u << 20)
#define LIST_MAX_DEPTH 4

struct kind_info {
	const char *kind;
	const char *api_version;
	bool namespaced;
};

static const struct kind_info kinds[] = {
	{"IngressClass", "networking.k8s.io/v1", false},
	{"Ingress", "networking.k8s.io/v1", true},
	{"Service", "v1", true},
	{"EndpointSlice", "discovery.k8s.io/v1", true},
	{"Secret", "v1", true},
};

struct load {
	struct k8s_store *store;
	struct k8s_manifests_stats *st;
	const char *file;
};

static const char *str_or(const cJSON *o, const char *key, const char *dflt)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(j) ? j->valuestring : dflt;
}

static int add_object(struct load *l, cJSON *obj, unsigned line, unsigned depth);

static int add_list(struct load *l, cJSON *list, unsigned line, unsigned depth)
{
	cJSON *items = cJSON_GetObjectItemCaseSensitive(list, "items");
	int ret = 0;

	if (cJSON_IsNull(items) || !items)
		return 0;
	if (!cJSON_IsArray(items)) {
		log_warn(TAG, "%s:%u List: items is not a list, skipped", l->file, line);
		l->st->skipped++;
		return 0;
	}
	while (ret == 0 && items->child) {
		cJSON *it = cJSON_DetachItemViaPointer(items, items->child);
		ret = add_object(l, it, line, depth + 1);
	}
	return ret;
}

/* Validates obj and moves it into the store, or skips it with a warning.
 * Takes ownership of obj. Returns 0 or -ENOMEM. */
static int add_object(struct load *l, cJSON *obj, unsigned line, unsigned depth)
{
	const struct kind_info *ki = NULL;
	const char *kind, *api, *name, *ns, *why = NULL;
	const cJSON *meta, *jns;
	int ret;

	if (cJSON_IsNull(obj)) { /* empty document */
		cJSON_Delete(obj);
		return 0;
	}
	if (!cJSON_IsObject(obj)) {
		log_warn(TAG, "%s:%u: document is not a mapping, skipped", l->file, line);
		l->st->skipped++;
		cJSON_Delete(obj);
		return 0;
	}
	kind = str_or(obj, "kind", NULL);
	api = str_or(obj, "apiVersion", "");
	meta = cJSON_GetObjectItemCaseSensitive(obj, "metadata");
	name = str_or(meta, "name", "");
	jns = cJSON_GetObjectItemCaseSensitive(meta, "namespace");
	ns = cJSON_IsString(jns) && *jns->valuestring ? jns->valuestring : "default";

	if (!kind || !*kind) {
		log_warn(TAG, "%s:%u: object without kind, skipped", l->file, line);
		l->st->skipped++;
		cJSON_Delete(obj);
		return 0;
	}
	if (!strcmp(kind, "List")) {
		if (depth >= LIST_MAX_DEPTH) {
			log_warn(TAG, "%s:%u List: nested too deep, skipped", l->file, line);
			l->st->skipped++;
			ret = 0;
		} else {
			ret = add_list(l, obj, line, depth);
		}
		cJSON_Delete(obj);
		return ret;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kind, kinds[i].kind))
			ki = &kinds[i];
	if (!ki) {
		log_debug(TAG, "%s:%u %s %s/%s: kind not used, ignored", l->file, line, kind, ns,
			  name);
		l->st->ignored++;
		cJSON_Delete(obj);
		return 0;
	}
	if (!ki->namespaced)
		ns = "";
	char api_why[128];
	if (strcmp(api, ki->api_version)) {
		snprintf(api_why, sizeof(api_why), "unsupported apiVersion \"%.40s\" (want %s)",
			 api, ki->api_version);
		why = api_why;
	}
	else if (!cJSON_IsObject(meta))
		why = "metadata missing or not a mapping";
	else if (!*name)
		why = "metadata.name missing or not a string";
	else if (jns && !cJSON_IsString(jns) && !cJSON_IsNull(jns))
		why = "metadata.namespace is not a string";
	if (why) {
		log_warn(TAG, "%s:%u %s %s%s%s: %s, skipped", l->file, line, kind, ns,
			 *ns ? "/" : "", *name ? name : "?", why);
		l->st->skipped++;
		cJSON_Delete(obj);
		return 0;
	}

	const struct k8s_object *old = k8s_store_get(l->store, kind, ns, name);
	if (old)
		log_warn(TAG, "%s:%u %s %s%s%s: defined again, replaces the one of %s:%u", l->file,
			 line, kind, ns, *ns ? "/" : "", name, old->source ? old->source : "?",
			 old->line);
	ret = k8s_store_upsert(l->store, kind, ns, name, obj, l->file, line);
	if (ret < 0)
		return ret;
	if (ret == 0)
		l->st->objects++;
	return 0;
}

static int read_file(const char *file, char **buf, size_t *len)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	size_t off = 0;
	int ret;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto err_close;
	}
	if ((uint64_t)st.st_size > MANIFEST_MAX_BYTES) {
		ret = -EFBIG;
		goto err_close;
	}
	*buf = malloc((size_t)st.st_size + 1);
	if (!*buf) {
		ret = -ENOMEM;
		goto err_close;
	}
	for (;;) {
		ssize_t n = read(fd, *buf + off, (size_t)st.st_size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto err_free;
		}
		if (n == 0 || (off += (size_t)n) == (size_t)st.st_size)
			break; /* a file that grows meanwhile is read again on its event */
	}
	(*buf)[off] = '\0';
	*len = off;
	close(fd);
	return 0;

err_free:
	free(*buf);
	*buf = NULL;
err_close:
	close(fd);
	return ret;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && !strcasecmp(s + n - m, suffix);
}

static void line_col(const char *buf, const char *at, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (const char *p = buf; p < at && *p; p++) {
		if (*p == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

static int load_json(struct load *l, const char *buf, size_t len)
{
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, false);

	if (!root) {
		unsigned line, col;
		if (!end || end < buf || end > buf + len)
			end = buf;
		line_col(buf, end, &line, &col);
		log_error(TAG, "%s:%u:%u: invalid JSON", l->file, line, col);
		return -EINVAL;
	}
	/* Trailing garbage other than white space is an error too. */
	while (end && end < buf + len && (*end == ' ' || *end == '\n' || *end == '\r' ||
					  *end == '\t'))
		end++;
	if (end && end < buf + len && *end) {
		unsigned line, col;
		line_col(buf, end, &line, &col);
		log_error(TAG, "%s:%u:%u: invalid JSON: data after the value", l->file, line, col);
		cJSON_Delete(root);
		return -EINVAL;
	}
	return add_object(l, root, 1, 0);
}

static int load_yaml(struct load *l, const char *buf, size_t len)
{
	struct k8s_yaml_doc *docs;
	struct k8s_yaml_error err;
	size_t n;
	int ret = k8s_yaml_parse(buf, len, &docs, &n, &err);

	if (ret == -EINVAL) {
		log_error(TAG, "%s:%u:%u: %s", l->file, err.line, err.column, err.msg);
		return ret;
	}
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n && ret == 0; i++) {
		cJSON *root = docs[i].root;
		docs[i].root = NULL;
		ret = add_object(l, root, docs[i].line, 0);
	}
	k8s_yaml_docs_free(docs, n);
	return ret;
}

static int load_file(struct load *l, const char *file)
{
	char *buf = NULL;
	size_t len = 0;
	int ret = read_file(file, &buf, &len);

	if (ret < 0) {
		log_error(TAG, "%s: %s", file, strerror(-ret));
		return ret;
	}
	l->file = file;
	l->st->files++;
	if (has_suffix(file, ".json"))
		ret = load_json(l, buf, len);
	else
		ret = load_yaml(l, buf, len);
	free(buf);
	return ret;
}

static int want_entry(const struct dirent *d)
{
	return d->d_name[0] != '.' &&
	       (has_suffix(d->d_name, ".yaml") || has_suffix(d->d_name, ".yml") ||
		has_suffix(d->d_name, ".json"));
}

static int load_dir(struct load *l, const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, want_entry, alphasort);
	int ret = 0;

	if (n < 0) {
		ret = -errno;
		log_error(TAG, "%s: %s", dir, strerror(-ret));
		return ret;
	}
	for (int i = 0; i < n; i++) {
		char file[4096];
		struct stat st;
		int r = 0;

		if (snprintf(file, sizeof(file), "%s/%s", dir, names[i]->d_name) >=
		    (int)sizeof(file))
			r = -ENAMETOOLONG;
		else if (stat(file, &st) < 0)
			r = errno == ENOENT ? 0 : -errno; /* removed meanwhile */
		else if (S_ISREG(st.st_mode))
			r = load_file(l, file);
		if (r < 0 && r != -ENOENT && !ret)
			ret = r; /* go on: report every broken file at once */
		if (r == -ENOMEM)
			break;
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

int k8s_manifests_load(const char *path, struct k8s_store *store,
		       struct k8s_manifests_stats *stats)
{
	struct k8s_manifests_stats scratch;
	struct load l = {.store = store, .st = stats ? stats : &scratch};
	struct stat st;

	*l.st = (struct k8s_manifests_stats){0};
	if (stat(path, &st) < 0) {
		int ret = -errno;
		log_error(TAG, "%s: %s", path, strerror(-ret));
		return ret;
	}
	if (S_ISDIR(st.st_mode))
		return load_dir(&l, path);
	return load_file(&l, path);
}
