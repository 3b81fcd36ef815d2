/* k8s_support.c - the test API server, kubeconfigs and objects for the
 * Kubernetes API integration tests. See k8s_support.h. */
#include "k8s_support.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
	int idx;
	pid_t pid;
	int ctl_port;
} K = {.pid = -1};

static const char *root(void)
{
	const char *r = getenv("RINGRESS_ROOT");
	return r && *r ? r : ".";
}

pid_t k_api_start(int idx)
{
	char script[PATH_MAX], port[16], ctl[16], tls[PATH_MAX], state[PATH_MAX];

	K.idx = idx;
	K.ctl_port = K_PORT(idx, 1);
	/* ringress honours proxies from the environment: never for the tests. */
	setenv("no_proxy", "127.0.0.1,localhost", 1);
	setenv("NO_PROXY", "127.0.0.1,localhost", 1);
	snprintf(script, sizeof(script), "%s/tests/support/kube-apiserver.py", root());
	snprintf(port, sizeof(port), "%d", K_PORT(idx, 0));
	snprintf(ctl, sizeof(ctl), "%d", K.ctl_port);
	snprintf(tls, sizeof(tls), "%s/tls", h_dir());
	snprintf(state, sizeof(state), "%s/api-state.json", h_dir());
	char *argv[] = {"/usr/bin/python3", script,	"--port",  port,  "--control-port",
			ctl,		    "--tls-dir", tls,	   "--token", K_TOKEN,
			"--state",	    state,	 "--seed", "1",	  NULL};
	pid_t pid = h_spawn("kube-apiserver", argv);
	if (pid < 0)
		return pid;
	K.pid = pid;
	int64_t deadline = h_now_ms() + 10000;
	while (h_now_ms() < deadline) {
		if (k_ctl("GET", "/_test/health", NULL, NULL) == 200 && h_wait_port(K_PORT(idx, 0), 100))
			return pid;
		if (!h_alive(pid))
			break;
		h_sleep_ms(50);
	}
	return -ETIMEDOUT;
}

void k_api_kill(void)
{
	int st;
	if (K.pid <= 0)
		return;
	h_signal(K.pid, SIGKILL);
	h_wait_exit(K.pid, 5000, &st);
	K.pid = -1;
}

int k_ctl(const char *method, const char *path, const char *body, char **out)
{
	struct h_conn c;
	struct h_resp r;
	int status = 0;

	if (out)
		*out = NULL;
	if (h_conn_open(&c, K.ctl_port, 2000))
		return 0;
	if (!h_conn_sendf(&c,
			  "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
			  "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			  method, path, body ? strlen(body) : 0, body ? body : "") &&
	    !h_conn_response(&c, &r, false, 10000)) {
		status = r.status;
		if (out)
			*out = strdup(r.body ? r.body : "");
		h_resp_free(&r);
	}
	h_conn_close(&c);
	return status;
}

void k_apply(const char *json)
{
	char *out;
	int st = k_ctl("POST", "/_test/objects", json, &out);
	cr_assert_eq(st, 200, "apply failed (%d): %s\n%s", st, out ? out : "", json);
	free(out);
}

void k_delete(const char *kind, const char *ns, const char *name)
{
	char body[512];
	snprintf(body, sizeof(body), "{\"kind\":\"%s\",\"namespace\":\"%s\",\"name\":\"%s\"}", kind,
		 ns ? ns : "", name);
	int st = k_ctl("POST", "/_test/delete", body, NULL);
	cr_assert_eq(st, 200, "delete %s %s/%s failed (%d)", kind, ns ? ns : "", name, st);
}

char *k_get(const char *kind, const char *ns, const char *name)
{
	char path[512], *out;
	snprintf(path, sizeof(path), "/_test/object?kind=%s&namespace=%s&name=%s", kind,
		 ns ? ns : "", name);
	if (k_ctl("GET", path, NULL, &out) != 200) {
		free(out);
		return NULL;
	}
	return out;
}

void k_config(const char *json)
{
	cr_assert_eq(k_ctl("POST", "/_test/config", json, NULL), 200, "config %s", json);
}

int k_watches(void)
{
	char *out;
	int n = 0;
	if (k_ctl("GET", "/_test/watches", NULL, &out) != 200) {
		free(out);
		return -1;
	}
	/* {"ingresses": 1, "services": 2, ...}: add the numbers up. */
	for (char *p = out; p && (p = strchr(p, ':')); p++)
		n += atoi(p + 1);
	free(out);
	return n;
}

/* ---- kubeconfig ---- */

static char *b64_file(const char *path)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char buf[16384];
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "open %s", path);
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	cr_assert_gt(n, 0);
	char *out = malloc((size_t)n / 3 * 4 + 8), *o = out;
	for (ssize_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)buf[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)buf[i + 1] << 8;
		if (i + 2 < n)
			v |= buf[i + 2];
		*o++ = tab[(v >> 18) & 63];
		*o++ = tab[(v >> 12) & 63];
		*o++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*o++ = i + 2 < n ? tab[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

const char *k_kubeconfig(int idx, const char *name, const char *auth)
{
	static char path[PATH_MAX];
	char user[8192] = "{}", tls[PATH_MAX];

	snprintf(tls, sizeof(tls), "%s/tls", h_dir());
	if (!strcmp(auth, "token")) {
		snprintf(user, sizeof(user), "{token: %s}", K_TOKEN);
	} else if (!strcmp(auth, "tokenfile")) {
		cr_assert_eq(h_write("token", "%s\n", K_TOKEN), 0);
		snprintf(user, sizeof(user), "{tokenFile: token}"); /* relative to the kubeconfig */
	} else if (!strcmp(auth, "cert")) {
		char p[PATH_MAX + 16];
		snprintf(p, sizeof(p), "%s/client.crt", tls);
		char *cert = b64_file(p);
		snprintf(p, sizeof(p), "%s/client.key", tls);
		char *key = b64_file(p);
		snprintf(user, sizeof(user), "{client-certificate-data: %s, client-key-data: %s}", cert,
			 key);
		free(cert);
		free(key);
	}
	cr_assert_eq(h_write(name,
			     "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
			     "clusters:\n- name: test\n  cluster:\n"
			     "    server: https://127.0.0.1:%d\n"
			     "    certificate-authority: %s/ca.crt\n"
			     "contexts:\n- name: test\n  context: {cluster: test, user: ringress}\n"
			     "users:\n- name: ringress\n  user: %s\n",
			     K_PORT(idx, 0), tls, user),
		     0);
	snprintf(path, sizeof(path), "%s/%s", h_dir(), name);
	return path;
}

pid_t k_ringress(const char *name, const char *kubeconfig, int http, int admin, ...)
{
	char hp[16], ap_[16];
	char *argv[64];
	int n = 0;
	const char *bin = getenv("RINGRESS_BIN");
	va_list ap;

	snprintf(hp, sizeof(hp), "%d", http);
	snprintf(ap_, sizeof(ap_), "%d", admin);
	argv[n++] = (char *)(bin && *bin ? bin : "zig-out/bin/ringress");
	argv[n++] = "--kubeconfig";
	argv[n++] = (char *)kubeconfig;
	argv[n++] = "--bind";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--http-port";
	argv[n++] = hp;
	argv[n++] = "--admin-port";
	argv[n++] = ap_;
	argv[n++] = "--log-level";
	argv[n++] = "debug";
	argv[n++] = "--https-port";
	argv[n++] = "0";
	argv[n++] = "--shards";
	argv[n++] = "1";
	va_start(ap, admin);
	for (char *a; n < 63 && (a = va_arg(ap, char *));)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return h_spawn(name, argv);
}

const char *k_identity(pid_t pid)
{
	static char buf[300];
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	snprintf(buf, sizeof(buf), "%s_%d", host, (int)pid);
	return buf;
}

/* ---- objects ---- */

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	char *s;
	va_list ap;
	va_start(ap, f);
	int n = vasprintf(&s, f, ap);
	va_end(ap);
	cr_assert_geq(n, 0);
	return s;
}

char *k_json_class(void)
{
	return fmt("{\"kind\":\"IngressClass\",\"apiVersion\":\"networking.k8s.io/v1\","
		   "\"metadata\":{\"name\":\"ringress\"},"
		   "\"spec\":{\"controller\":\"ringress.io/ingress-controller\"}}");
}

char *k_json_service(const char *ns, const char *svc, int port)
{
	return fmt("{\"kind\":\"Service\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"%s\","
		   "\"namespace\":\"%s\"},\"spec\":{\"ports\":[{\"name\":\"http\",\"port\":80,"
		   "\"targetPort\":%d}]}}",
		   svc, ns, port);
}

char *k_json_slice(const char *ns, const char *svc, const char *suffix, int port, bool ready)
{
	return fmt("{\"kind\":\"EndpointSlice\",\"apiVersion\":\"discovery.k8s.io/v1\","
		   "\"metadata\":{\"name\":\"%s-%s\",\"namespace\":\"%s\",\"labels\":"
		   "{\"kubernetes.io/service-name\":\"%s\"}},\"addressType\":\"IPv4\","
		   "\"ports\":[{\"name\":\"http\",\"port\":%d}],\"endpoints\":[{\"addresses\":"
		   "[\"127.0.0.1\"],\"conditions\":{\"ready\":%s}}]}",
		   svc, suffix, ns, svc, port, ready ? "true" : "false");
}

char *k_json_ingress(const char *ns, const char *name, const char *cls, const char *host,
		     const char *svc)
{
	char c[128] = "";
	if (cls)
		snprintf(c, sizeof(c), "\"ingressClassName\":\"%s\",", cls);
	return fmt("{\"kind\":\"Ingress\",\"apiVersion\":\"networking.k8s.io/v1\","
		   "\"metadata\":{\"name\":\"%s\",\"namespace\":\"%s\"},\"spec\":{%s\"rules\":[{"
		   "\"host\":\"%s\",\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":\"Prefix\","
		   "\"backend\":{\"service\":{\"name\":\"%s\",\"port\":{\"number\":80}}}}]}}]}}",
		   name, ns, c, host, svc);
}

char *k_items(char *first, ...)
{
	size_t cap = 64, len;
	char *out = malloc(cap);
	va_list ap;

	strcpy(out, "{\"items\":[");
	len = strlen(out);
	va_start(ap, first);
	for (char *s = first; s; s = va_arg(ap, char *)) {
		size_t n = strlen(s);
		while (len + n + 4 > cap) {
			cap *= 2;
			out = realloc(out, cap);
		}
		if (s != first)
			out[len++] = ',';
		memcpy(out + len, s, n);
		len += n;
		free(s);
	}
	va_end(ap);
	while (len + 4 > cap)
		out = realloc(out, cap *= 2);
	strcpy(out + len, "]}");
	return out;
}

/* ---- traffic ---- */

const char *k_route(int port, const char *host)
{
	static char out[8][64];
	static int k;
	char *o = out[k++ & 7];
	struct h_resp r;
	int e = h_get(&r, port, host, "/");

	if (e) {
		snprintf(o, 64, "ERR%d", e);
		h_resp_free(&r);
		return o;
	}
	const char *svc = h_echo_value(&r, "service");
	if (r.status == 200 && svc)
		snprintf(o, 64, "%s", svc);
	else
		snprintf(o, 64, "%d", r.status);
	h_resp_free(&r);
	return o;
}

bool k_wait_route(int port, const char *host, const char *want, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	do {
		if (!strcmp(k_route(port, host), want))
			return true;
		h_sleep_ms(50);
	} while (h_now_ms() < deadline);
	return false;
}

bool k_wait_log(const char *name, const char *text, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s.log", h_dir(), name);
	do {
		FILE *f = fopen(path, "r");
		if (f) {
			char line[4096];
			bool found = false;
			while (!found && fgets(line, sizeof(line), f))
				found = strstr(line, text) != NULL;
			fclose(f);
			if (found)
				return true;
		}
		h_sleep_ms(50);
	} while (h_now_ms() < deadline);
	return false;
}

bool k_wait_object(const char *kind, const char *ns, const char *name, const char *text,
		   bool absent, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	do {
		char *o = k_get(kind, ns, name);
		bool has = o && strstr(o, text);
		free(o);
		if (has != absent)
			return true;
		h_sleep_ms(50);
	} while (h_now_ms() < deadline);
	return false;
}
