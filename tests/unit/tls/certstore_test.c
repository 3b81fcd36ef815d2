/* certstore_test.c - the certificate store: SNI selection over real
 * certificates, refused Secrets and their fallback, options. */
#include "tls_test.h"

TestSuite(certstore, .init = tls_test_init);

static const char *sel(struct tls_store *s, const char *name)
{
	return tls_store_select(s, name, name ? strlen(name) : 0);
}

Test(certstore, select_exact_wildcard_default)
{
	struct tls_store *s = tls_test_store(NULL, false);

	cr_assert_eq(tls_store_count(s), 3);
	cr_assert_str_eq(sel(s, "a.example.com"), "rsa");
	cr_assert_str_eq(sel(s, "WWW.A.example.com."), "rsa");
	cr_assert_str_eq(sel(s, "b.example.com"), "ecdsa");
	cr_assert_str_eq(sel(s, "x.wild.example.com"), "wild");
	cr_assert_str_eq(sel(s, "wild.example.com"), "(self-signed)");
	cr_assert_str_eq(sel(s, "a.b.wild.example.com"), "(self-signed)");
	cr_assert_str_eq(sel(s, "unknown.example.org"), "(self-signed)");
	cr_assert_str_eq(sel(s, NULL), "(self-signed)");
	cr_assert_str_eq(sel(s, "bad name"), "(self-signed)");
	tls_store_release(s);

	s = tls_test_store(NULL, true);
	cr_assert_str_eq(sel(s, "unknown.example.org"), "default");
	cr_assert_str_eq(sel(s, NULL), "default");
	cr_assert_str_eq(sel(s, "b.example.com"), "ecdsa");
	tls_store_release(s);
}

Test(certstore, wildcard_certificate_one_label)
{
	static const char *const hosts[] = {"*.example.com"};
	struct tls_store *s = tls_store_new(NULL);

	cr_assert_eq(tls_add_fixture(s, "wildrsa", hosts, 1), 0);
	cr_assert_str_eq(sel(s, "foo.example.com"), "wildrsa");
	cr_assert_str_eq(sel(s, "example.com"), "(self-signed)");
	cr_assert_str_eq(sel(s, "a.foo.example.com"), "(self-signed)");
	tls_store_release(s);
}

/* Expects tls_store_add to refuse Secret name with crt/key, logging its
 * name, and its hosts to keep the default certificate. */
static void expect_refused(const char *crt, size_t clen, const char *key, size_t klen,
			   const char *name, const char *why)
{
	static const char *const hosts[] = {"a.example.com", "www.a.example.com"};
	struct tls_store *s = tls_store_new(NULL);
	struct tls_stats before, after;
	char *log;
	int r;

	tls_stats_get(&before);
	capture_start();
	r = tls_store_add(s, hosts, 2, crt, clen, key, klen, name);
	log = capture_end();
	tls_stats_get(&after);
	cr_assert_eq(r, -EINVAL);
	cr_assert_not_null(strstr(log, name), "log: %s", log);
	cr_assert_not_null(strstr(log, why), "log: %s", log);
	cr_assert_eq(after.secret_errors, before.secret_errors + 1);
	cr_assert_eq(tls_store_count(s), 0);
	cr_assert_str_eq(sel(s, "a.example.com"), "(self-signed)");
	cr_assert_str_eq(sel(s, "www.a.example.com"), "(self-signed)");

	/* The store still works for other Secrets. */
	static const char *const b[] = {"b.example.com"};
	cr_assert_eq(tls_add_fixture(s, "ecdsa", b, 1), 0);
	cr_assert_str_eq(sel(s, "b.example.com"), "ecdsa");
	free(log);
	tls_store_release(s);
}

Test(certstore, broken_pem)
{
	size_t clen, klen;
	char *c = tls_fixture("broken.crt", &clen), *k = tls_fixture("rsa.key", &klen);

	expect_refused(c, clen, k, klen, "shop/broken-cert", "tls.crt");
	expect_refused("not a certificate", 17, k, klen, "shop/garbage", "tls.crt");
	free(c);
	free(k);
}

Test(certstore, broken_key)
{
	size_t clen, klen;
	char *c = tls_fixture("rsa.crt", &clen), *k = tls_fixture("rsa.key", &klen);

	k[klen / 2] = '\0'; /* cut in the middle */
	expect_refused(c, clen, k, klen / 2, "shop/broken-key", "tls.key");
	free(c);
	free(k);
}

Test(certstore, mismatched_key)
{
	size_t clen, klen;
	char *c = tls_fixture("rsa.crt", &clen), *k = tls_fixture("other.key", &klen);

	expect_refused(c, clen, k, klen, "shop/mismatch", "does not match");
	free(k);
	/* Another key type than the certificate's. */
	k = tls_fixture("ecdsa.key", &klen);
	expect_refused(c, clen, k, klen, "shop/mismatch-type", "tls.key");
	free(c);
	free(k);
}

Test(certstore, missing_key_or_cert)
{
	size_t clen, klen;
	char *c = tls_fixture("rsa.crt", &clen), *k = tls_fixture("rsa.key", &klen);

	expect_refused(c, clen, NULL, 0, "shop/no-key", "tls.key is missing");
	expect_refused(c, clen, "", 0, "shop/empty-key", "tls.key is missing");
	expect_refused(NULL, 0, k, klen, "shop/no-cert", "tls.crt is missing");
	free(c);
	free(k);
}

Test(certstore, key_formats)
{
	/* rsa.key PKCS#1, ecdsa.key SEC1, wild.key PKCS#8 (make-certs.sh). */
	struct tls_store *s = tls_test_store(NULL, true);

	cr_assert_eq(tls_store_count(s), 3);
	tls_store_release(s);
}

Test(certstore, host_not_covered_falls_back)
{
	static const char *const hosts[] = {"b.example.com", "a.example.com", "*.a.example.com"};
	struct tls_store *s = tls_store_new(NULL);
	char *log;

	capture_start();
	log_threshold = LOG_WARN;
	cr_assert_eq(tls_add_fixture(s, "rsa", hosts, 3), 0);
	log_threshold = LOG_ERROR;
	log = capture_end();
	cr_assert_str_eq(sel(s, "a.example.com"), "rsa");
	cr_assert_str_eq(sel(s, "b.example.com"), "(self-signed)");
	cr_assert_str_eq(sel(s, "x.a.example.com"), "(self-signed)");
	cr_assert_not_null(strstr(log, "does not cover host b.example.com"), "%s", log);
	free(log);
	tls_store_release(s);
}

Test(certstore, first_secret_wins_a_host)
{
	static const char *const hosts[] = {"a.example.com"};
	struct tls_store *s = tls_store_new(NULL);

	cr_assert_eq(tls_add_fixture(s, "rsa", hosts, 1), 0);
	cr_assert_eq(tls_add_fixture(s, "wildrsa", (const char *const[]){"a.example.com"}, 1), 0);
	cr_assert_str_eq(sel(s, "a.example.com"), "rsa");
	tls_store_release(s);
}

Test(certstore, default_certificate)
{
	struct tls_store *s = tls_store_new(NULL);
	size_t clen, klen;
	char *c = tls_fixture("default.crt", &clen), *k = tls_fixture("other.key", &klen);

	capture_start();
	cr_assert_eq(tls_store_set_default(s, c, clen, k, klen, "ingress/bad-default"), -EINVAL);
	free(capture_end());
	cr_assert_str_eq(sel(s, NULL), "(self-signed)");
	free(k);
	k = tls_fixture("default.key", &klen);
	cr_assert_eq(tls_store_set_default(s, c, clen, k, klen, "ingress/default"), 0);
	cr_assert_str_eq(sel(s, NULL), "ingress/default");
	cr_assert_str_eq(sel(s, "nowhere.example.com"), "ingress/default");
	free(c);
	free(k);
	tls_store_release(s);
}

Test(certstore, options)
{
	struct tls_options o = {0};

	cr_assert_eq(tls_options_check(&o), 0);
	cr_assert_eq(tls_options_check(NULL), 0);
	o.protocols = "TLSv1.3";
	cr_assert_eq(tls_options_check(&o), 0);
	o.protocols = "SSLv3 TLSv1.2";
	capture_start();
	log_threshold = LOG_WARN;
	cr_assert_eq(tls_options_check(&o), 0);
	log_threshold = LOG_ERROR;
	free(capture_end());
	o.protocols = "TLSv1 TLSv1.3"; /* a hole: 1.1 and 1.2 off */
	cr_assert_eq(tls_options_check(&o), 0);

	capture_start();
	o.protocols = "TLSv1.4";
	cr_assert_eq(tls_options_check(&o), -EINVAL);
	o.protocols = "";
	cr_assert_eq(tls_options_check(&o), -EINVAL);
	o.protocols = NULL;
	o.ciphers = "NOT-A-CIPHER:ALSO-NOT";
	cr_assert_eq(tls_options_check(&o), -EINVAL);
	char *log = capture_end();
	cr_assert_not_null(strstr(log, "TLSv1.4"), "%s", log);
	cr_assert_not_null(strstr(log, "NOT-A-CIPHER"), "%s", log);
	free(log);

	o.ciphers = "ECDHE-RSA-AES256-GCM-SHA384";
	cr_assert_eq(tls_options_check(&o), 0);
	o.ciphers = "HIGH:!aNULL:!MD5"; /* OpenSSL keywords wolfSSL knows */
	cr_assert_eq(tls_options_check(&o), 0);
	capture_start();
	log_threshold = LOG_WARN;
	o.ciphers = "NOPE:ECDHE-RSA-AES256-GCM-SHA384";
	cr_assert_eq(tls_options_check(&o), 0);
	cr_assert_null(tls_store_new(&(struct tls_options){.protocols = "bogus"}));
	log_threshold = LOG_ERROR;
	log = capture_end();
	cr_assert_not_null(strstr(log, "unknown cipher \"NOPE\""), "%s", log);
	cr_assert_null(strstr(log, "aNULL"), "%s", log);
	free(log);
}

Test(certstore, references)
{
	struct tls_store *s = tls_test_store(NULL, false);

	cr_assert_eq(tls_store_acquire(s), s);
	tls_store_release(s);
	cr_assert_str_eq(sel(s, "b.example.com"), "ecdsa");
	tls_transport_ops.ctx_free(s);
	tls_store_release(NULL);
}
