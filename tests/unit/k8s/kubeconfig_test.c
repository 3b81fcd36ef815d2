/* kubeconfig_test.c - kubeconfig variants, in-cluster settings, base64. */
#include "k8s/kubeconfig.h"
#include "k8s_test.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void setup(void)
{
	quiet_logs();
	snprintf(dir, sizeof(dir), "/tmp/ringress-kc-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(kubeconfig, .init = setup, .fini = teardown);

static const char *put(const char *name, const char *text)
{
	static char path[8][256];
	static int k;
	char *p = path[k++ & 7];
	snprintf(p, 256, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

/* Contents of a file (static buffer). */
static const char *slurp(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "open %s", path);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_geq(n, 0);
	buf[n] = '\0';
	return buf;
}

#define KC_HEAD                                                                                    \
	"apiVersion: v1\nkind: Config\ncurrent-context: one\n"                                    \
	"clusters:\n"                                                                              \
	"- name: c1\n  cluster:\n    server: https://10.0.0.1:6443/\n"                             \
	"    certificate-authority: certs/ca.pem\n"                                                \
	"- name: c2\n  cluster:\n    server: https://[fd00::1]:443\n"                              \
	"    certificate-authority-data: Q0EgREFUQQo=\n"                                            \
	"    insecure-skip-tls-verify: true\n"                                                     \
	"contexts:\n"                                                                              \
	"- name: one\n  context: {cluster: c1, user: u1, namespace: team}\n"                       \
	"- name: two\n  context: {cluster: c2, user: u2}\n"                                        \
	"- name: nouser\n  context: {cluster: c1}\n"                                               \
	"- name: badcluster\n  context: {cluster: nope, user: u1}\n"                               \
	"- name: exec\n  context: {cluster: c1, user: u3}\n"                                       \
	"- name: halfcert\n  context: {cluster: c1, user: u4}\n"                                   \
	"- name: tokfile\n  context: {cluster: c1, user: u5}\n"                                    \
	"users:\n"                                                                                 \
	"- name: u1\n  user: {token: abc123}\n"                                                    \
	"- name: u2\n  user:\n    client-certificate-data: Q0VSVA==\n"                              \
	"    client-key-data: S0VZ\n"                                                              \
	"- name: u3\n  user:\n    exec: {command: aws}\n"                                          \
	"- name: u4\n  user:\n    client-certificate-data: Q0VSVA==\n"                              \
	"- name: u5\n  user: {tokenFile: tok}\n"

static const char *write_kc(void)
{
	char sub[128];
	snprintf(sub, sizeof(sub), "%s/certs", dir);
	mkdir(sub, 0700);
	put("certs/ca.pem", "CA FILE\n");
	put("tok", "file-token\n");
	return put("kubeconfig", KC_HEAD);
}

Test(kubeconfig, current_context_token_and_relative_ca)
{
	struct k8s_conn_config c;
	char err[256] = "", want[256];
	const char *kc = write_kc();

	cr_assert_eq(k8s_kubeconfig_load(kc, NULL, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.server, "https://10.0.0.1:6443"); /* trailing '/' dropped */
	snprintf(want, sizeof(want), "%s/certs/ca.pem", dir);
	cr_assert_str_eq(c.ca_file, want);
	cr_assert_str_eq(c.token, "abc123");
	cr_assert_null(c.token_file);
	cr_assert_null(c.cert_file);
	cr_assert_str_eq(c.ns, "team");
	cr_assert_not(c.insecure);
	k8s_conn_config_clear(&c);
	cr_assert_null(c.server);
}

Test(kubeconfig, context_flag_inline_data_and_insecure)
{
	struct k8s_conn_config c;
	char err[256] = "";
	const char *kc = write_kc();

	cr_assert_eq(k8s_kubeconfig_load(kc, "two", &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.server, "https://[fd00::1]:443");
	cr_assert(c.insecure);
	cr_assert_null(c.token);
	cr_assert_null(c.ns);
	/* Inline data lands in files libcurl (GnuTLS) can read. */
	cr_assert_str_eq(slurp(c.ca_file), "CA DATA\n");
	cr_assert_str_eq(slurp(c.cert_file), "CERT");
	cr_assert_str_eq(slurp(c.key_file), "KEY");
	k8s_conn_config_clear(&c);
}

Test(kubeconfig, token_file_is_relative_to_the_kubeconfig)
{
	struct k8s_conn_config c;
	char err[256] = "", want[256];
	const char *kc = write_kc();

	cr_assert_eq(k8s_kubeconfig_load(kc, "tokfile", &c, err, sizeof(err)), 0, "%s", err);
	snprintf(want, sizeof(want), "%s/tok", dir);
	cr_assert_str_eq(c.token_file, want);
	cr_assert_null(c.token);
	k8s_conn_config_clear(&c);

	/* No user at all is valid (anonymous). */
	cr_assert_eq(k8s_kubeconfig_load(kc, "nouser", &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_null(c.token);
	k8s_conn_config_clear(&c);
}

Test(kubeconfig, errors_name_the_problem)
{
	struct k8s_conn_config c;
	char err[256];
	const char *kc = write_kc();

	cr_assert_eq(k8s_kubeconfig_load(kc, "missing", &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "context \"missing\" not found"), "%s", err);
	cr_assert_null(c.server);
	cr_assert_eq(k8s_kubeconfig_load(kc, "badcluster", &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "cluster \"nope\" not found"), "%s", err);
	cr_assert_eq(k8s_kubeconfig_load(kc, "exec", &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "exec"), "%s", err);
	cr_assert_eq(k8s_kubeconfig_load(kc, "halfcert", &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "client-key"), "%s", err);

	char path[256];
	snprintf(path, sizeof(path), "%s/nope.yaml", dir);
	cr_assert_eq(k8s_kubeconfig_load(path, NULL, &c, err, sizeof(err)), -ENOENT);

	const char *bad = put("bad.yaml", "clusters: [unclosed\n");
	cr_assert_eq(k8s_kubeconfig_load(bad, NULL, &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "bad.yaml:"), "%s", err);

	const char *noctx = put("noctx.yaml", "apiVersion: v1\nkind: Config\n");
	cr_assert_eq(k8s_kubeconfig_load(noctx, NULL, &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "current-context"), "%s", err);

	const char *b64 = put("b64.yaml", "current-context: x\nclusters: [{name: c, cluster: "
					  "{server: 'https://a', certificate-authority-data: '!!'}}]\n"
					  "contexts: [{name: x, context: {cluster: c}}]\n");
	cr_assert_eq(k8s_kubeconfig_load(b64, NULL, &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "base64"), "%s", err);

	const char *noca = put("noca.yaml", "current-context: x\nclusters: [{name: c, cluster: "
					    "{server: 'https://a', certificate-authority: /nonexistent/ca}}]\n"
					    "contexts: [{name: x, context: {cluster: c}}]\n");
	cr_assert_eq(k8s_kubeconfig_load(noca, NULL, &c, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "/nonexistent/ca"), "%s", err);
}

Test(kubeconfig, json_kubeconfig)
{
	struct k8s_conn_config c;
	char err[256] = "";
	const char *kc = put("kc.json",
			     "{\"current-context\":\"x\",\"clusters\":[{\"name\":\"c\",\"cluster\":"
			     "{\"server\":\"127.0.0.1:8443\"}}],\"contexts\":[{\"name\":\"x\","
			     "\"context\":{\"cluster\":\"c\",\"user\":\"u\"}}],\"users\":[{\"name\":"
			     "\"u\",\"user\":{\"token\":\"t\"}}]}");

	cr_assert_eq(k8s_kubeconfig_load(kc, NULL, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.server, "https://127.0.0.1:8443"); /* scheme added */
	cr_assert_str_eq(c.token, "t");
	cr_assert_eq(k8s_conn_set_server(&c, "http://127.0.0.1:8080//"), 0);
	cr_assert_str_eq(c.server, "http://127.0.0.1:8080");
	cr_assert_eq(k8s_conn_set_server(&c, ""), -EINVAL);
	k8s_conn_config_clear(&c);
}

Test(kubeconfig, in_cluster)
{
	struct k8s_conn_config c;
	char err[256] = "", want[256];

	unsetenv("KUBERNETES_SERVICE_HOST");
	cr_assert_eq(k8s_incluster_load(dir, &c, err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "KUBERNETES_SERVICE_HOST"), "%s", err);

	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	cr_assert_eq(k8s_incluster_load(dir, &c, err, sizeof(err)), -ENOENT); /* no token */
	cr_assert(strstr(err, "token"), "%s", err);

	put("token", "tok\n");
	put("ca.crt", "CA\n");
	put("namespace", "ingress\n");
	cr_assert_eq(k8s_incluster_load(dir, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.server, "https://10.96.0.1:443");
	snprintf(want, sizeof(want), "%s/token", dir);
	cr_assert_str_eq(c.token_file, want);
	snprintf(want, sizeof(want), "%s/ca.crt", dir);
	cr_assert_str_eq(c.ca_file, want);
	cr_assert_str_eq(c.ns, "ingress");
	k8s_conn_config_clear(&c);

	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	cr_assert_eq(k8s_incluster_load(dir, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(c.server, "https://[fd00::1]:443");
	k8s_conn_config_clear(&c);
}

Test(kubeconfig, base64)
{
	char *out;
	size_t n;

	cr_assert_eq(k8s_base64_decode("aGVsbG8=", 8, &out, &n), 0);
	cr_assert_eq(n, 5);
	cr_assert_str_eq(out, "hello");
	free(out);
	cr_assert_eq(k8s_base64_decode("aGVs\nbG8", 8, &out, &n), 0); /* no padding, newline */
	cr_assert_str_eq(out, "hello");
	free(out);
	cr_assert_eq(k8s_base64_decode("-_8=", 4, &out, &n), 0); /* URL-safe */
	cr_assert_eq(n, 2);
	cr_assert_eq((unsigned char)out[0], 0xfb);
	cr_assert_eq((unsigned char)out[1], 0xff);
	free(out);
	cr_assert_eq(k8s_base64_decode("", 0, &out, &n), 0);
	cr_assert_eq(n, 0);
	free(out);
	cr_assert_eq(k8s_base64_decode("a", 1, &out, &n), -EINVAL);
	cr_assert_eq(k8s_base64_decode("aGVs*G8=", 8, &out, &n), -EINVAL);
	cr_assert_eq(k8s_base64_decode("aG==VsbG8", 9, &out, &n), -EINVAL);
}
