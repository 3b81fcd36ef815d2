/* tls_test.c - HTTPS termination: certificates from kubernetes.io/tls
 * Secrets chosen by SNI, the default certificate, redirects, HSTS,
 * forwarding headers, rotation, refused versions and garbage. Ports: test
 * indices 100..109. */
#include "harness.h"

#include <criterion/criterion.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

static const char *fixture(const char *name)
{
	static char buf[4][512];
	static int i;
	const char *root = getenv("RINGRESS_ROOT");
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/tests/fixtures/tls/%s", root ? root : ".", name);
	return buf[i];
}

/* base64 of a fixture file, via coreutils (malloc'd, no newlines). */
static char *b64_file(const char *name)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "base64 -w0 %s", fixture(name));
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	char *out = calloc(1, 65536);
	size_t n = fread(out, 1, 65535, p);
	out[n] = 0;
	pclose(p);
	cr_assert_gt(n, 100, "base64 of %s", name);
	return out;
}

static void write_secret(const char *file, const char *name, const char *crt, const char *key)
{
	char *c = b64_file(crt), *k = b64_file(key);
	cr_assert_eq(h_write_atomic(file,
				    "apiVersion: v1\nkind: Secret\nmetadata: {name: %s, namespace: demo}\n"
				    "type: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n",
				    name, c, k),
		     0);
	free(c);
	free(k);
}

/* The manifests: backend "web", an Ingress with TLS for a.example.com
 * (Secret a-tls) and b.example.com (Secret b-tls), and one without TLS for
 * plain.example.com; ssl-redirect is turned off on "noredir". */
static void setup_manifests(int echo_port)
{
	char *cls = h_yaml_class(), *be = h_yaml_backend("demo", "web", echo_port, true);
	cr_assert_eq(h_write("m/00-base.yaml", "%s---\n%s", cls, be), 0);
	free(cls);
	free(be);
	write_secret("m/10-a.yaml", "a-tls", "rsa.crt", "rsa.key");
	write_secret("m/11-b.yaml", "b-tls", "ecdsa.crt", "ecdsa.key");
	cr_assert_eq(h_write("m/20-ing.yaml",
			     "apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
			     "metadata: {name: tls, namespace: demo}\n"
			     "spec:\n  ingressClassName: ringress\n"
			     "  tls:\n  - hosts: [a.example.com]\n    secretName: a-tls\n"
			     "  - hosts: [b.example.com]\n    secretName: b-tls\n"
			     "  rules:\n"
			     "  - host: a.example.com\n    http: {paths: [{path: /, pathType: Prefix, "
			     "backend: {service: {name: web, port: {number: 80}}}}]}\n"
			     "  - host: b.example.com\n    http: {paths: [{path: /, pathType: Prefix, "
			     "backend: {service: {name: web, port: {number: 80}}}}]}\n"
			     "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n"
			     "metadata: {name: noredir, namespace: demo, annotations: "
			     "{nginx.ingress.kubernetes.io/ssl-redirect: \"false\"}}\n"
			     "spec:\n  ingressClassName: ringress\n"
			     "  tls:\n  - hosts: [n.example.com]\n    secretName: missing-secret\n"
			     "  rules:\n"
			     "  - host: n.example.com\n    http: {paths: [{path: /, pathType: Prefix, "
			     "backend: {service: {name: web, port: {number: 80}}}}]}\n"
			     "  - host: plain.example.com\n    http: {paths: [{path: /, pathType: Prefix, "
			     "backend: {service: {name: web, port: {number: 80}}}}]}\n"),
		     0);
}

/* Subject CN of the certificate served for sni (openssl s_client). */
static void served_cn(int port, const char *sni, const char *extra, char *out, size_t cap)
{
	char cmd[800];
	snprintf(cmd, sizeof(cmd),
		 "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d %s%s %s 2>/dev/null | "
		 "openssl x509 -noout -subject 2>/dev/null",
		 port, sni ? "-servername " : "-noservername", sni ? sni : "", extra ? extra : "");
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	pclose(p);
}

TestSuite(tls, .init = h_setup, .fini = h_teardown, .timeout = 60);

Test(tls, sni_certificates_default_and_headers)
{
	int echo = H_PORT(100, 0), http = H_PORT(100, 1), admin = H_PORT(100, 2),
	    https = H_PORT(100, 3);
	char hp[16], res[64], url[128], cn[512];

	cr_assert_gt(h_echo("web", echo), 0);
	setup_manifests(echo);
	snprintf(hp, sizeof(hp), "%d", https);
	cr_assert_gt(h_ringress_ready(http, admin, "--https-port", hp, NULL), 0);

	/* a.example.com: its own RSA certificate, verified against the test CA. */
	struct h_resp r = {0};
	snprintf(res, sizeof(res), "a.example.com:%d:127.0.0.1", https);
	snprintf(url, sizeof(url), "https://a.example.com:%d/hello", https);
	cr_assert_eq(h_curl(&r, "--cacert", fixture("ca.crt"), "--resolve", res, url, NULL), 0,
		     "curl failed: %s", h_log_tail("ringress", 2000));
	cr_expect_eq(r.status, 200);
	cr_expect_str_eq(h_echo_value(&r, "service"), "web");
	cr_expect_str_eq(h_echo_value(&r, "header.x-forwarded-proto"), "https");
	char port_s[16];
	snprintf(port_s, sizeof(port_s), "%d", https);
	cr_expect_str_eq(h_echo_value(&r, "header.x-forwarded-port"), port_s);
	const char *hsts = h_header(&r, "Strict-Transport-Security");
	cr_assert_not_null(hsts);
	cr_expect(strstr(hsts, "max-age=31536000") && strstr(hsts, "includeSubDomains"), "%s", hsts);
	h_resp_free(&r);

	served_cn(https, "a.example.com", NULL, cn, sizeof(cn));
	cr_expect(strstr(cn, "CN = a.example.com"), "a.example.com got %s", cn);
	served_cn(https, "b.example.com", NULL, cn, sizeof(cn));
	cr_expect(strstr(cn, "CN = b.example.com"), "b.example.com (ECDSA) got %s", cn);
	served_cn(https, "b.example.com", "-tls1_2", cn, sizeof(cn));
	cr_expect(strstr(cn, "CN = b.example.com"), "b.example.com under TLS 1.2 got %s", cn);
	/* Unknown SNI, no SNI, and a host whose Secret is missing: default. */
	served_cn(https, "unknown.example.com", NULL, cn, sizeof(cn));
	cr_expect(strstr(cn, "Fake Certificate"), "unknown SNI got %s", cn);
	served_cn(https, NULL, NULL, cn, sizeof(cn));
	cr_expect(strstr(cn, "Fake Certificate"), "no SNI got %s", cn);
	served_cn(https, "n.example.com", NULL, cn, sizeof(cn));
	cr_expect(strstr(cn, "Fake Certificate"), "missing Secret got %s", cn);
	cr_expect(strstr(h_log_tail("ringress", 20000), "missing-secret"),
		  "the missing Secret is not logged");

	/* The Host header routes; SNI only picks the certificate. */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/x", https);
	cr_assert_eq(h_curl(&r, "-k", "-H", "Host: b.example.com", url, NULL), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
}

Test(tls, redirects_and_opt_out)
{
	int echo = H_PORT(101, 0), http = H_PORT(101, 1), admin = H_PORT(101, 2),
	    https = H_PORT(101, 3);
	char hp[16], want[128];

	cr_assert_gt(h_echo("web", echo), 0);
	setup_manifests(echo);
	snprintf(hp, sizeof(hp), "%d", https);
	cr_assert_gt(h_ringress_ready(http, admin, "--https-port", hp, NULL), 0);

	struct h_resp r = {0};
	cr_assert_eq(h_get(&r, http, "a.example.com:8080", "/path?q=1"), 0);
	cr_expect_eq(r.status, 308);
	snprintf(want, sizeof(want), "https://a.example.com:%d/path?q=1", https);
	cr_expect_str_eq(h_header(&r, "Location"), want);
	h_resp_free(&r);
	/* A POST redirected before its body was read: ringress closes after
	 * the 308 but drains the body meanwhile (lingering close), even though
	 * the client said Connection: close, so that the rest of the upload
	 * does not turn into a reset that could destroy the 308. */
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, http, 2000), 0);
	static char body[1000];
	memset(body, 'b', sizeof(body));
	cr_assert_eq(h_conn_sendf(&c, "POST /up HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n"
				      "Content-Length: 100000\r\n\r\n"), 0);
	cr_assert_eq(h_conn_send(&c, body, sizeof(body), 2000), 0);
	cr_assert_eq(h_conn_response(&c, &r, false, 5000), 0);
	cr_expect_eq(r.status, 308);
	h_resp_free(&r);
	h_sleep_ms(200);
	bool reset = false;
	for (int i = 0; i < 5 && !reset; i++) {
		if (send(c.fd, body, sizeof(body), MSG_NOSIGNAL) < 0)
			reset = true;
		h_sleep_ms(50);
	}
	cr_expect(!reset, "the rest of a redirected upload was answered with a reset (no lingering close)");
	h_conn_close(&c);
	/* ssl-redirect: "false" and hosts without TLS are served over HTTP. */
	cr_assert_eq(h_get(&r, http, "n.example.com", "/"), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
	cr_assert_eq(h_get(&r, http, "plain.example.com", "/"), 0);
	cr_expect_eq(r.status, 200);
	cr_expect_null(h_header(&r, "Strict-Transport-Security"), "HSTS over plain HTTP");
	h_resp_free(&r);
}

Test(tls, rotation_versions_and_garbage)
{
	int echo = H_PORT(102, 0), http = H_PORT(102, 1), admin = H_PORT(102, 2),
	    https = H_PORT(102, 3);
	char hp[16], cn[512];

	cr_assert_gt(h_echo("web", echo), 0);
	setup_manifests(echo);
	snprintf(hp, sizeof(hp), "%d", https);
	pid_t pid = h_ringress_ready(http, admin, "--https-port", hp, NULL);
	cr_assert_gt(pid, 0);

	/* A connection kept open across the rotation keeps working. */
	char cmd[600];
	snprintf(cmd, sizeof(cmd),
		 "(printf 'GET /1 HTTP/1.1\\r\\nHost: a.example.com\\r\\n\\r\\n'; sleep 2; "
		 "printf 'GET /2 HTTP/1.1\\r\\nHost: a.example.com\\r\\nConnection: close\\r\\n\\r\\n'; "
		 "sleep 1) | timeout 10 openssl s_client -quiet -connect 127.0.0.1:%d "
		 "-servername a.example.com 2>/dev/null | grep -c '^service=web'",
		 https);
	FILE *open_conn = popen(cmd, "r");
	cr_assert_not_null(open_conn);
	h_sleep_ms(700);
	/* Rotate a-tls to the wildcard certificate: the next handshake uses it. */
	write_secret("m/10-a.yaml", "a-tls", "wildrsa.crt", "wildrsa.key");
	bool rotated = false;
	for (int i = 0; i < 50 && !rotated; i++) {
		h_sleep_ms(100);
		served_cn(https, "a.example.com", NULL, cn, sizeof(cn));
		rotated = !strstr(cn, "CN = a.example.com");
	}
	cr_expect(rotated, "still serving the old certificate: %s", cn);
	char count[16] = {0};
	size_t n = fread(count, 1, sizeof(count) - 1, open_conn);
	count[n] = 0;
	pclose(open_conn);
	cr_expect_eq(atoi(count), 2, "the open connection served %s responses", count);

	/* TLS 1.0 and 1.1 are refused; 1.2 and 1.3 work. */
	served_cn(https, "b.example.com", "-tls1_1", cn, sizeof(cn));
	cr_expect_eq(cn[0], 0, "TLS 1.1 accepted: %s", cn);
	served_cn(https, "b.example.com", "-tls1_3", cn, sizeof(cn));
	cr_expect(strstr(cn, "CN = b.example.com"), "TLS 1.3: %s", cn);

	/* Garbage and a stalled handshake close only their own connection. */
	struct h_conn c;
	cr_assert_eq(h_conn_open(&c, https, 2000), 0);
	cr_assert_eq(h_conn_sendf(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
	cr_expect_eq(h_conn_wait_closed(&c, 5000), 0, "garbage on the TLS port kept open");
	h_conn_close(&c);
	cr_expect(h_alive(pid));
	struct h_resp r = {0};
	char url[128];
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", https);
	cr_assert_eq(h_curl(&r, "-k", "-H", "Host: b.example.com", url, NULL), 0);
	cr_expect_eq(r.status, 200);
	h_resp_free(&r);
}

/* First line of `openssl s_client` output that contains needle ("" if none). */
static void s_client_grep(int port, const char *args, const char *needle, char *out, size_t cap)
{
	char cmd[800];
	snprintf(cmd, sizeof(cmd),
		 "echo | timeout 10 openssl s_client -connect 127.0.0.1:%d %s 2>&1 | grep -m1 '%s'",
		 port, args, needle);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	pclose(p);
}

Test(tls, alpn_and_stalled_handshake)
{
	int echo = H_PORT(103, 0), http = H_PORT(103, 1), admin = H_PORT(103, 2),
	    https = H_PORT(103, 3);
	char hp[16], line[512];

	cr_assert_gt(h_echo("web", echo), 0);
	setup_manifests(echo);
	snprintf(hp, sizeof(hp), "%d", https);
	pid_t pid = h_ringress_ready(http, admin, "--https-port", hp, "--client-header-timeout",
				     "1s", NULL);
	cr_assert_gt(pid, 0);

	s_client_grep(https, "-servername a.example.com -alpn h2,http/1.1", "ALPN protocol", line,
		      sizeof(line));
	cr_expect(strstr(line, "http/1.1"), "ALPN with h2 offered first: %s", line);
	s_client_grep(https, "-servername a.example.com -alpn h2", "alert", line, sizeof(line));
	cr_expect(strstr(line, "no application protocol") || strstr(line, "alert"),
		  "h2-only ALPN was not refused: %s", line);

	/* A client that connects and never finishes its handshake is cut. */
	struct h_conn c;
	int64_t t0 = h_now_ms();
	cr_assert_eq(h_conn_open(&c, https, 2000), 0);
	static const char partial[] = "\x16\x03\x01\x00\xc8\x01"; /* a ClientHello's first bytes */
	cr_assert_eq(h_conn_send(&c, partial, sizeof(partial) - 1, 1000), 0);
	cr_expect_eq(h_conn_wait_closed(&c, 8000), 0, "stalled handshake kept open");
	cr_expect_lt(h_now_ms() - t0, 8000);
	h_conn_close(&c);
	cr_expect(h_alive(pid));
}

/* 2 % of the allocations on the shard thread fail (tests/support/failmalloc.c,
 * LD_PRELOAD; a TLS handshake makes dozens) while 60 HTTPS requests come in:
 * each gets its whole answer, or a failed handshake or closed connection at
 * once (curl's exit status 28 would be a wait of 10 s); the failures are
 * logged; once they stop, HTTPS is served as before. */
Test(tls, out_of_memory_in_handshakes)
{
	int echo = H_PORT(104, 0), http = H_PORT(104, 1), admin = H_PORT(104, 2),
	    https = H_PORT(104, 3);
	char hp[16], res[64], url[128];
	cr_assert_gt(h_echo("web", echo), 0);
	setup_manifests(echo);
	snprintf(hp, sizeof(hp), "%d", https);
	cr_assert_eq(h_failmalloc_preload("shard-", 20), 0, "RINGRESS_FAILMALLOC (libfailmalloc.so) not set: run through zig build test");
	pid_t p = h_ringress_ready(http, admin, "--https-port", hp, NULL);
	h_failmalloc_spawned(); /* not for curl */
	cr_assert_gt(p, 0);
	snprintf(res, sizeof(res), "a.example.com:%d:127.0.0.1", https);
	cr_assert_eq(h_failmalloc_on(true), 0);
	int ok = 0, failed = 0;
	for (int i = 0; i < 60; i++) {
		struct h_resp r = {0};
		snprintf(url, sizeof(url), "https://a.example.com:%d/_/bytes/%d", https, 1000 * (i + 1));
		int e = h_curl(&r, "--cacert", fixture("ca.crt"), "--resolve", res, url, NULL);
		cr_assert_neq(e, 28, "request %d: no answer and no close in 10 s; log:\n%s", i,
			      h_log_tail("ringress", 4000));
		if (e == 0 && r.status == 200) {
			cr_assert_eq(r.body_len, (size_t)(1000 * (i + 1)), "request %d: %zu bytes", i, r.body_len);
			ok++;
		} else {
			cr_assert(e != 0 || r.status == 502 || r.status == 503, "request %d: status %d", i,
				  r.status);
			failed++;
		}
		h_resp_free(&r);
	}
	cr_assert_eq(h_failmalloc_on(false), 0);
	cr_log_info("TLS out of memory: %d answered, %d failed", ok, failed);
	cr_expect_gt(failed, 5, "few failures: did the library load?");
	cr_expect_gt(ok, 0, "no handshake went through");
	cr_expect(strstr(h_log_tail("ringress", 1 << 20), "out of memory"), "failures without a log line");
	cr_assert(h_alive(p));
	for (int i = 0; i < 10; i++) {
		struct h_resp r = {0};
		snprintf(url, sizeof(url), "https://a.example.com:%d/after", https);
		cr_assert_eq(h_curl(&r, "--cacert", fixture("ca.crt"), "--resolve", res, url, NULL), 0);
		cr_expect_eq(r.status, 200);
		h_resp_free(&r);
	}
}
