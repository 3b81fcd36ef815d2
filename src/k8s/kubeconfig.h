/* kubeconfig.h - how to reach the API server: a kubeconfig file, the
 * in-cluster service account, or a bare --apiserver-host.
 *
 * The result is a struct k8s_conn_config that apiclient.c turns into
 * libcurl options. Everything is file-based because libcurl's GnuTLS
 * flavour (7.88) takes CA, client certificate and key only as file names:
 * inline "-data" fields of a kubeconfig are decoded into anonymous memory
 * files (memfd, named /proc/self/fd/N; a private temporary file when memfd
 * is unavailable) that live as long as the config. */
#ifndef RINGRESS_K8S_KUBECONFIG_H
#define RINGRESS_K8S_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define K8S_SERVICEACCOUNT_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct k8s_conn_config {
	char *server;     /* "https://host:port" without a trailing '/' */
	char *ca_file;    /* CA bundle (PEM) to verify the server, or NULL (system CAs) */
	char *cert_file;  /* client certificate (PEM), or NULL */
	char *key_file;   /* client key (PEM), or NULL */
	char *token;      /* static bearer token, or NULL */
	char *token_file; /* bearer token re-read periodically, or NULL */
	char *ns;         /* default namespace of the context / pod, or NULL */
	char *source;     /* "kubeconfig PATH (context C)", "in-cluster", ... for logs */
	bool insecure;    /* insecure-skip-tls-verify */
	/* Memory files backing inline data; -1 when unused. */
	int fds[3];
	char *tmp_files[3]; /* fallback temporary files, unlinked by clear */
};

/* Sets every field to its empty value (fds -1). */
void k8s_conn_config_init(struct k8s_conn_config *c);

/* Frees strings, closes memory files, removes temporary files; leaves c
 * initialised. */
void k8s_conn_config_clear(struct k8s_conn_config *c);

/* Reads kubeconfig PATH (YAML or JSON) and fills c from context (NULL: the
 * file's current-context): its cluster's server, certificate-authority or
 * certificate-authority-data, insecure-skip-tls-verify, its user's token,
 * tokenFile, client-certificate(-data), client-key(-data), and the
 * context's namespace. Relative paths are relative to PATH's directory, as
 * kubectl resolves them. Returns 0, or -EINVAL / -ENOENT / -ENOMEM with a
 * human-readable reason in err (errlen bytes), c then cleared. */
int k8s_kubeconfig_load(const char *path, const char *context, struct k8s_conn_config *c,
			char *err, size_t errlen);

/* In-cluster configuration: server from KUBERNETES_SERVICE_HOST and
 * KUBERNETES_SERVICE_PORT, token file dir/token (re-read by the client),
 * CA dir/ca.crt, namespace from dir/namespace. dir NULL means
 * K8S_SERVICEACCOUNT_DIR. Returns 0; -ENOENT when the environment
 * variables are not set or the token is missing (with err filled). */
int k8s_incluster_load(const char *dir, struct k8s_conn_config *c, char *err, size_t errlen);

/* Replaces c->server by url (a trailing '/' removed; "https://" added when
 * url has no scheme). Returns 0, -EINVAL for an empty url, -ENOMEM. */
int k8s_conn_set_server(struct k8s_conn_config *c, const char *url);

/* Decodes standard or URL-safe base64 (padding optional, white space
 * ignored) of in (len bytes) into a malloc'ed buffer *out of *outlen bytes
 * (NUL-terminated for convenience). Returns 0, -EINVAL or -ENOMEM. */
int k8s_base64_decode(const char *in, size_t len, char **out, size_t *outlen);

#endif
