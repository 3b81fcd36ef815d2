/* kubeconfig.c - kubeconfig files, in-cluster service account, server URL.
 * The kubeconfig is parsed by yaml.c (libyaml -> cJSON), so JSON
 * kubeconfigs work too. */
#include "k8s/kubeconfig.h"

#include "k8s/yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KUBECONFIG_MAX_BYTES (16u << 20)

enum { FD_CA, FD_CERT, FD_KEY };

void k8s_conn_config_init(struct k8s_conn_config *c)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < 3; i++)
		c->fds[i] = -1;
}

void k8s_conn_config_clear(struct k8s_conn_config *c)
{
	free(c->server);
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	if (c->token) {
		/* Do not leave credentials in freed memory. */
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
	}
	free(c->token_file);
	free(c->ns);
	free(c->source);
	for (int i = 0; i < 3; i++) {
		if (c->fds[i] >= 0)
			close(c->fds[i]);
		if (c->tmp_files[i]) {
			unlink(c->tmp_files[i]);
			free(c->tmp_files[i]);
		}
	}
	k8s_conn_config_init(c);
}

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* ---- base64 --------------------------------------------------------------- */

static int b64_value(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

int k8s_base64_decode(const char *in, size_t len, char **out, size_t *outlen)
{
	char *buf = malloc(len / 4 * 3 + 4);
	size_t n = 0;
	unsigned acc = 0, bits = 0, pad = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];
		int v;

		if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
			continue;
		if (ch == '=') {
			pad++;
			continue;
		}
		if (pad || (v = b64_value(ch)) < 0)
			goto err; /* data after padding, or not base64 */
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	/* A lone trailing sextet cannot encode a byte; too much padding is bad. */
	if (bits >= 6 || pad > 2)
		goto err;
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
err:
	free(buf);
	return -EINVAL;
}

/* ---- files ----------------------------------------------------------------- */

static int read_all(const char *path, char **buf, size_t *len, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096, n = 0;
	char *b;

	if (fd < 0)
		return -errno;
	b = malloc(cap + 1);
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		if (n == cap) {
			if (cap >= max) {
				free(b);
				close(fd);
				return -EFBIG;
			}
			cap *= 2;
			char *nb = realloc(b, cap + 1);
			if (!nb) {
				free(b);
				close(fd);
				return -ENOMEM;
			}
			b = nb;
		}
		ssize_t r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int ret = -errno;
			free(b);
			close(fd);
			return ret;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/* Writes data into an anonymous memory file (or a private temporary file)
 * and stores a path naming it in *path. */
static int data_file(struct k8s_conn_config *c, int slot, const char *name, const char *data,
		     size_t len, char **path)
{
	char p[64];
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd >= 0) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		if (access(p, R_OK) < 0) { /* no /proc: fall back */
			close(fd);
			fd = -1;
		}
	}
	if (fd < 0) {
		const char *tmp = getenv("TMPDIR");
		char t[4096];
		snprintf(t, sizeof(t), "%s/ringress-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
		fd = mkostemp(t, O_CLOEXEC); /* mode 0600 */
		if (fd < 0)
			return -errno;
		c->tmp_files[slot] = strdup(t);
		if (!c->tmp_files[slot]) {
			unlink(t);
			close(fd);
			return -ENOMEM;
		}
		snprintf(p, sizeof(p), "%s", "");
	}
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int ret = -errno;
			close(fd);
			return ret;
		}
		off += (size_t)w;
	}
	if (c->tmp_files[slot]) {
		close(fd);
		*path = strdup(c->tmp_files[slot]);
	} else {
		c->fds[slot] = fd;
		*path = strdup(p);
	}
	return *path ? 0 : -ENOMEM;
}

/* ---- kubeconfig ------------------------------------------------------------- */

static const cJSON *jget(const cJSON *o, const char *key)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
}

static const char *jstr(const cJSON *o, const char *key)
{
	const cJSON *j = jget(o, key);
	return cJSON_IsString(j) && j->valuestring && *j->valuestring ? j->valuestring : NULL;
}

/* Finds the entry called name in list (clusters, contexts, users) and
 * returns its member field. */
static const cJSON *named(const cJSON *root, const char *list, const char *name,
			  const char *field)
{
	const cJSON *it, *arr = jget(root, list);

	if (!cJSON_IsArray(arr))
		return NULL;
	cJSON_ArrayForEach(it, arr)
	{
		const char *n = jstr(it, "name");
		if (n && !strcmp(n, name)) {
			const cJSON *f = jget(it, field);
			/* An entry with an empty body is valid: return a stand-in. */
			return f ? f : it;
		}
	}
	return NULL;
}

/* Resolves a path relative to the kubeconfig's directory. */
static char *resolve(const char *dir, const char *p)
{
	char *r;

	if (p[0] == '/' || !dir)
		return strdup(p);
	if (asprintf(&r, "%s/%s", dir, p) < 0)
		return NULL;
	return r;
}

/* Sets *dst from FIELD (a path) or FIELD-data (base64). */
static int file_or_data(struct k8s_conn_config *c, const cJSON *o, const char *field,
			const char *dir, int slot, const char *what, char **dst, char *err,
			size_t errlen, const char *path)
{
	char key[64];
	const char *data, *file;

	snprintf(key, sizeof(key), "%s-data", field);
	data = jstr(o, key);
	file = jstr(o, field);
	if (data) {
		char *dec;
		size_t n;
		int r = k8s_base64_decode(data, strlen(data), &dec, &n);
		if (r == -EINVAL)
			return fail(err, errlen, r, "kubeconfig %s: %s is not valid base64", path,
				    key);
		if (r < 0)
			return r;
		r = data_file(c, slot, what, dec, n, dst);
		explicit_bzero(dec, n);
		free(dec);
		if (r < 0)
			return fail(err, errlen, r, "kubeconfig %s: cannot store %s: %s", path, key,
				    strerror(-r));
		return 0;
	}
	if (file) {
		*dst = resolve(dir, file);
		if (!*dst)
			return -ENOMEM;
		if (access(*dst, R_OK) < 0)
			return fail(err, errlen, -errno, "kubeconfig %s: %s %s: %s", path, field,
				    *dst, strerror(errno));
	}
	return 0;
}

static int load_doc(const cJSON *root, const char *path, const char *dir, const char *context,
		    struct k8s_conn_config *c, char *err, size_t errlen)
{
	const char *ctx_name = context ? context : jstr(root, "current-context");
	const cJSON *ctx, *cluster, *user = NULL;
	const char *cname, *uname, *server, *s;
	int r;

	if (!cJSON_IsObject(root))
		return fail(err, errlen, -EINVAL, "kubeconfig %s: not a mapping", path);
	if (!ctx_name)
		return fail(err, errlen, -EINVAL,
			    "kubeconfig %s: no current-context (use --kube-context)", path);
	ctx = named(root, "contexts", ctx_name, "context");
	if (!ctx)
		return fail(err, errlen, -EINVAL, "kubeconfig %s: context \"%s\" not found", path,
			    ctx_name);
	cname = jstr(ctx, "cluster");
	if (!cname)
		return fail(err, errlen, -EINVAL, "kubeconfig %s: context \"%s\" names no cluster",
			    path, ctx_name);
	cluster = named(root, "clusters", cname, "cluster");
	if (!cluster)
		return fail(err, errlen, -EINVAL, "kubeconfig %s: cluster \"%s\" not found", path,
			    cname);
	uname = jstr(ctx, "user");
	if (uname && !(user = named(root, "users", uname, "user")))
		return fail(err, errlen, -EINVAL, "kubeconfig %s: user \"%s\" not found", path,
			    uname);

	server = jstr(cluster, "server");
	if (!server)
		return fail(err, errlen, -EINVAL, "kubeconfig %s: cluster \"%s\" has no server",
			    path, cname);
	if ((r = k8s_conn_set_server(c, server)) < 0)
		return r;
	const cJSON *insecure = jget(cluster, "insecure-skip-tls-verify");
	c->insecure = cJSON_IsTrue(insecure) ||
		      (cJSON_IsString(insecure) && !strcmp(insecure->valuestring, "true"));
	r = file_or_data(c, cluster, "certificate-authority", dir, FD_CA, "ca", &c->ca_file, err,
			 errlen, path);
	if (r < 0)
		return r;
	if ((s = jstr(ctx, "namespace")) && !(c->ns = strdup(s)))
		return -ENOMEM;

	if (user) {
		if (jget(user, "exec") || jget(user, "auth-provider"))
			return fail(err, errlen, -EINVAL,
				    "kubeconfig %s: user \"%s\": exec and auth-provider "
				    "credentials are not supported (use a token or a client "
				    "certificate)",
				    path, uname);
		if ((s = jstr(user, "token")) && !(c->token = strdup(s)))
			return -ENOMEM;
		if (!c->token && (s = jstr(user, "tokenFile"))) {
			if (!(c->token_file = resolve(dir, s)))
				return -ENOMEM;
			if (access(c->token_file, R_OK) < 0)
				return fail(err, errlen, -errno, "kubeconfig %s: tokenFile %s: %s",
					    path, c->token_file, strerror(errno));
		}
		r = file_or_data(c, user, "client-certificate", dir, FD_CERT, "cert",
				 &c->cert_file, err, errlen, path);
		if (r < 0)
			return r;
		r = file_or_data(c, user, "client-key", dir, FD_KEY, "key", &c->key_file, err,
				 errlen, path);
		if (r < 0)
			return r;
		if (!c->cert_file != !c->key_file)
			return fail(err, errlen, -EINVAL,
				    "kubeconfig %s: user \"%s\": a client certificate needs both "
				    "client-certificate and client-key",
				    path, uname);
	}
	if (asprintf(&c->source, "kubeconfig %s (context %s)", path, ctx_name) < 0) {
		c->source = NULL;
		return -ENOMEM;
	}
	return 0;
}

int k8s_kubeconfig_load(const char *path, const char *context, struct k8s_conn_config *c,
			char *err, size_t errlen)
{
	struct k8s_yaml_doc *docs = NULL;
	struct k8s_yaml_error yerr;
	size_t ndocs = 0, len;
	char *buf = NULL, *dcopy = NULL;
	int r;

	k8s_conn_config_init(c);
	r = read_all(path, &buf, &len, KUBECONFIG_MAX_BYTES);
	if (r < 0)
		return fail(err, errlen, r, "kubeconfig %s: %s", path, strerror(-r));
	r = k8s_yaml_parse(buf, len, &docs, &ndocs, &yerr);
	free(buf);
	if (r == -EINVAL)
		return fail(err, errlen, r, "kubeconfig %s:%u:%u: %s", path, yerr.line, yerr.column,
			    yerr.msg);
	if (r < 0)
		return r;
	if (ndocs != 1) {
		k8s_yaml_docs_free(docs, ndocs);
		return fail(err, errlen, -EINVAL, "kubeconfig %s: expected one document, found %zu",
			    path, ndocs);
	}
	dcopy = strdup(path);
	if (!dcopy) {
		k8s_yaml_docs_free(docs, ndocs);
		return -ENOMEM;
	}
	r = load_doc(docs[0].root, path, dirname(dcopy), context, c, err, errlen);
	free(dcopy);
	k8s_yaml_docs_free(docs, ndocs);
	if (r < 0) {
		if (r == -ENOMEM)
			fail(err, errlen, r, "kubeconfig %s: out of memory", path);
		k8s_conn_config_clear(c);
	}
	return r;
}

int k8s_incluster_load(const char *dir, struct k8s_conn_config *c, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char *url = NULL, *ns = NULL;
	size_t len;
	int r;

	k8s_conn_config_init(c);
	if (!dir)
		dir = K8S_SERVICEACCOUNT_DIR;
	if (!host || !*host || !port || !*port)
		return fail(err, errlen, -ENOENT,
			    "not running in a cluster (KUBERNETES_SERVICE_HOST and "
			    "KUBERNETES_SERVICE_PORT are not set)");
	if (asprintf(&url, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host, port) <
	    0)
		return -ENOMEM;
	r = k8s_conn_set_server(c, url);
	free(url);
	if (r < 0)
		goto err;
	if (asprintf(&c->token_file, "%s/token", dir) < 0 ||
	    asprintf(&c->ca_file, "%s/ca.crt", dir) < 0 ||
	    asprintf(&c->source, "in-cluster service account (%s)", dir) < 0) {
		r = -ENOMEM;
		goto err;
	}
	if (access(c->token_file, R_OK) < 0) {
		r = fail(err, errlen, -errno, "in-cluster: %s: %s", c->token_file,
			 strerror(errno));
		goto err;
	}
	if (access(c->ca_file, R_OK) < 0) {
		r = fail(err, errlen, -errno, "in-cluster: %s: %s", c->ca_file, strerror(errno));
		goto err;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/namespace", dir);
	if (read_all(path, &ns, &len, 4096) == 0) {
		while (len && (ns[len - 1] == '\n' || ns[len - 1] == ' '))
			ns[--len] = '\0';
		if (len)
			c->ns = ns;
		else
			free(ns);
	}
	return 0;
err:
	k8s_conn_config_clear(c);
	return r;
}

int k8s_conn_set_server(struct k8s_conn_config *c, const char *url)
{
	char *s;
	size_t n;

	if (!url || !*url)
		return -EINVAL;
	if (strstr(url, "://")) {
		s = strdup(url);
	} else if (asprintf(&s, "https://%s", url) < 0) {
		s = NULL;
	}
	if (!s)
		return -ENOMEM;
	n = strlen(s);
	while (n && s[n - 1] == '/')
		s[--n] = '\0';
	free(c->server);
	c->server = s;
	return 0;
}
