/* certstore.c - certificates from Secrets, one WOLFSSL_CTX each, SNI
 * selection, the self-signed default certificate. */
#include "tls/tls-int.h"

#include "core/log.h"
#include "tls/ticket.h"

#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_SECRET "(self-signed)"

/* ---- options ---------------------------------------------------------- */

static const struct {
	const char *name;
	int version;
	long no_flag;
} protocols[] = {
	{"TLSv1", TLS1_VERSION, WOLFSSL_OP_NO_TLSv1},
	{"TLSv1.1", TLS1_1_VERSION, WOLFSSL_OP_NO_TLSv1_1},
	{"TLSv1.2", TLS1_2_VERSION, WOLFSSL_OP_NO_TLSv1_2},
	{"TLSv1.3", TLS1_3_VERSION, WOLFSSL_OP_NO_TLSv1_3},
};
#define NPROTOCOLS (sizeof(protocols) / sizeof(protocols[0]))

/* Parses --ssl-protocols into the version range and the holes in it. */
static int parse_protocols(const char *list, int *minv, int *maxv, long *no)
{
	unsigned mask = 0;
	const char *p = list ? list : TLS_DEFAULT_PROTOCOLS;

	while (*p) {
		size_t n;
		unsigned i;

		p += strspn(p, " \t,");
		n = strcspn(p, " \t,");
		if (!n)
			break;
		for (i = 0; i < NPROTOCOLS; i++)
			if (strlen(protocols[i].name) == n && !strncmp(p, protocols[i].name, n))
				break;
		if (i < NPROTOCOLS) {
			mask |= 1u << i;
		} else if ((n == 5 && !strncmp(p, "SSLv2", 5)) || (n == 5 && !strncmp(p, "SSLv3", 5))) {
			log_warn(TLS_LOG, "ssl-protocols: %.*s is not supported, ignored", (int)n, p);
		} else {
			log_error(TLS_LOG, "ssl-protocols: unknown protocol \"%.*s\"", (int)n, p);
			return -EINVAL;
		}
		p += n;
	}
	if (!mask) {
		log_error(TLS_LOG, "ssl-protocols: no usable protocol in \"%s\"", list ? list : "");
		return -EINVAL;
	}
	int lo = __builtin_ctz(mask), hi = 31 - __builtin_clz(mask);

	*minv = protocols[lo].version;
	*maxv = protocols[hi].version;
	*no = 0;
	for (int i = lo; i <= hi; i++)
		if (!(mask & (1u << i)))
			*no |= protocols[i].no_flag;
	return 0;
}

static const char tls13_suites[] = "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
				   "TLS13-CHACHA20-POLY1305-SHA256";

/* The list given to wolfSSL: the TLS 1.3 suites first (OpenSSL keeps them
 * apart from ssl-ciphers), unless the list names some. */
static char *build_ciphers(const char *list, int maxv)
{
	const char *l = list ? list : TLS_DEFAULT_CIPHERS;
	char *out;

	if (maxv < TLS1_3_VERSION || strstr(l, "TLS13-") || strstr(l, "TLS_AES_") ||
	    strstr(l, "TLS_CHACHA20_"))
		return strdup(l);
	if (asprintf(&out, "%s%s%s", tls13_suites, *l ? ":" : "", l) < 0)
		return NULL;
	return out;
}

/* Applies the store's settings to a new server WOLFSSL_CTX. */
static int store_sni_cb(WOLFSSL *ssl, int *alert, void *arg);

static WOLFSSL_CTX *store_ctx_new(struct tls_store *s)
{
	WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());

	if (!ctx)
		return NULL;
	if (wolfSSL_CTX_set_min_proto_version(ctx, s->min_version) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_max_proto_version(ctx, s->max_version) != WOLFSSL_SUCCESS)
		goto err;
	if (s->no_versions)
		wolfSSL_CTX_set_options(ctx, s->no_versions);
	if (wolfSSL_CTX_set_cipher_list(ctx, s->ciphers) != WOLFSSL_SUCCESS)
		goto err;
	wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
	wolfSSL_CTX_SetIORecv(ctx, tls_io_recv);
	wolfSSL_CTX_SetIOSend(ctx, tls_io_send);
	wolfSSL_CTX_set_servername_callback(ctx, store_sni_cb);
	wolfSSL_CTX_set_servername_arg(ctx, s);
	/* Stateless: nothing in wolfSSL's shared (locked) session cache. */
	wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
	if (s->tickets) {
		wolfSSL_CTX_set_TicketEncCb(ctx, tls_ticket_cb);
		wolfSSL_CTX_set_TicketHint(ctx, s->ticket_hint);
	} else {
		wolfSSL_CTX_NoTicketTLSv12(ctx);
		wolfSSL_CTX_set_num_tickets(ctx, 0);
	}
	return ctx;
err:
	wolfSSL_CTX_free(ctx);
	return NULL;
}

int tls_options_check(const struct tls_options *o)
{
	struct tls_store *s = tls_store_new(o);

	if (!s)
		return -EINVAL;
	tls_store_release(s);
	return 0;
}

/* ---- SNI ---------------------------------------------------------------- */

const struct tls_cert *tls_store_pick(const struct tls_store *s, const char *name, size_t len)
{
	const struct tls_cert *c = name && len ? tls_sni_map_lookup(s->map, name, len) : NULL;

	return c ? c : s->def;
}

/* Runs once per ClientHello, before the suite is chosen: switches the
 * connection to the certificate the server name selects. */
static int store_sni_cb(WOLFSSL *ssl, int *alert, void *arg)
{
	const struct tls_store *s = arg;
	void *name = NULL;
	unsigned short len = wolfSSL_SNI_GetRequest(ssl, WOLFSSL_SNI_HOST_NAME, &name);
	const struct tls_cert *c = tls_store_pick(s, name, len);

	if (c == s->def)
		tls_count(sni_default);
	if (wolfSSL_get_SSL_CTX(ssl) == c->ctx)
		return 0;
	if (wolfSSL_set_SSL_CTX(ssl, c->ctx) != c->ctx) {
		*alert = internal_error;
		return fatal_return;
	}
	/* wolfSSL computed the suites at wolfSSL_new for the default
	 * certificate's key type: recompute them for another type
	 * (design.md). With the explicit cipher list every CTX gets, 5.5.4
	 * passed the unit tests without it; kept as cheap insurance. */
	if (c->key_type != s->def->key_type &&
	    wolfSSL_set_cipher_list(ssl, s->ciphers) != WOLFSSL_SUCCESS) {
		*alert = internal_error;
		return fatal_return;
	}
	return 0;
}

/* ---- certificates ------------------------------------------------------ */

static void cert_free(struct tls_cert *c)
{
	if (!c)
		return;
	wolfSSL_CTX_free(c->ctx);
	free(c->secret);
	free(c->subject);
	free(c);
}

static const char *wolf_err(int r)
{
	return r < 0 ? wolfSSL_ERR_reason_error_string((unsigned long)r) : "failed";
}

/* A certificate from PEM (or DER with der) in a new CTX of s. Returns NULL
 * and logs why on bad input. */
static struct tls_cert *cert_new(struct tls_store *s, const char *cert, size_t cert_len,
				 const char *key, size_t key_len, const char *secret, int format)
{
	struct tls_cert *c = calloc(1, sizeof(*c));
	WOLFSSL_X509 *x;
	int r;

	if (!c)
		return NULL;
	c->secret = strdup(secret ? secret : "?");
	c->ctx = store_ctx_new(s);
	if (!c->secret || !c->ctx) {
		log_error(TLS_LOG, "secret %s: no memory", secret);
		goto err;
	}
	if (!cert || !cert_len) {
		log_error(TLS_LOG, "secret %s: tls.crt is missing", secret);
		goto err;
	}
	if (!key || !key_len) {
		log_error(TLS_LOG, "secret %s: tls.key is missing", secret);
		goto err;
	}
	if (format == WOLFSSL_FILETYPE_PEM)
		r = wolfSSL_CTX_use_certificate_chain_buffer_format(
			c->ctx, (const unsigned char *)cert, (long)cert_len, format);
	else
		r = wolfSSL_CTX_use_certificate_buffer(c->ctx, (const unsigned char *)cert,
						       (long)cert_len, format);
	if (r != WOLFSSL_SUCCESS) {
		log_error(TLS_LOG, "secret %s: tls.crt is not a valid certificate (%s)", secret,
			  wolf_err(r));
		goto err;
	}
	r = wolfSSL_CTX_use_PrivateKey_buffer(c->ctx, (const unsigned char *)key, (long)key_len,
					      format);
	if (r != WOLFSSL_SUCCESS) {
		log_error(TLS_LOG, "secret %s: tls.key is not a valid RSA or ECDSA key (%s)",
			  secret, wolf_err(r));
		goto err;
	}
	r = wolfSSL_CTX_check_private_key(c->ctx);
	tls_thread_cache_free();
	if (r != WOLFSSL_SUCCESS) {
		log_error(TLS_LOG, "secret %s: tls.key does not match the certificate of tls.crt",
			  secret);
		goto err;
	}
	x = wolfSSL_CTX_get0_certificate(c->ctx);
	if (x) {
		c->subject = wolfSSL_X509_NAME_oneline(wolfSSL_X509_get_subject_name(x), NULL, 0);
		c->key_type = wolfSSL_X509_get_pubkey_type(x);
	}
	wolfSSL_CTX_set_ex_data(c->ctx, 0, c);
	return c;
err:
	cert_free(c);
	return NULL;
}

/* Does the certificate cover host (CN/SAN, wildcards as RFC 6125)? */
static bool cert_covers(const struct tls_cert *c, const char *host)
{
	WOLFSSL_X509 *x = wolfSSL_CTX_get0_certificate(c->ctx);

	return x && wolfSSL_X509_check_host(x, host, strlen(host), 0, NULL) == WOLFSSL_SUCCESS;
}

/* ---- the self-signed default certificate -------------------------------- */

static unsigned char *fake_cert, *fake_key;
static int fake_cert_len, fake_key_len;

void tls_fake_deinit(void)
{
	free(fake_cert);
	free(fake_key);
	fake_cert = fake_key = NULL;
}

int tls_fake_init(void)
{
	/* SubjectAltName: SEQUENCE { dNSName "ingress.local" } */
	static const unsigned char san[] = {0x30, 0x0f, 0x82, 0x0d, 'i', 'n', 'g', 'r', 'e', 's',
					    's', '.', 'l', 'o', 'c', 'a', 'l'};
	WC_RNG rng;
	ecc_key key;
	Cert cert;
	int r = -EIO;

	if (fake_cert)
		return 0;
	fake_cert = malloc(4096);
	fake_key = malloc(512);
	if (!fake_cert || !fake_key) {
		tls_fake_deinit();
		return -ENOMEM;
	}
	if (wc_InitRng(&rng))
		goto err;
	if (wc_ecc_init(&key))
		goto err_rng;
	if (wc_ecc_make_key_ex(&rng, 32, &key, ECC_SECP256R1))
		goto err_key;
	if (wc_InitCert(&cert))
		goto err_key;
	snprintf(cert.subject.commonName, sizeof(cert.subject.commonName), "%s",
		 "Kubernetes Ingress Controller Fake Certificate");
	snprintf(cert.subject.org, sizeof(cert.subject.org), "%s", "Acme Co");
	memcpy(cert.altNames, san, sizeof(san));
	cert.altNamesSz = sizeof(san);
	cert.sigType = CTC_SHA256wECDSA;
	cert.daysValid = 365;
	cert.isCA = 0;
	if (wc_MakeCert(&cert, fake_cert, 4096, NULL, &key, &rng) < 0)
		goto err_key;
	fake_cert_len = wc_SignCert(cert.bodySz, cert.sigType, fake_cert, 4096, NULL, &key, &rng);
	if (fake_cert_len < 0)
		goto err_key;
	fake_key_len = wc_EccKeyToDer(&key, fake_key, 512);
	if (fake_key_len < 0)
		goto err_key;
	r = 0;
err_key:
	wc_ecc_free(&key);
err_rng:
	wc_FreeRng(&rng);
err:
	if (r) {
		log_error(TLS_LOG, "cannot generate the self-signed default certificate");
		tls_fake_deinit();
	}
	return r;
}

/* ---- the store ---------------------------------------------------------- */

/* Validates --ssl-ciphers once, with a clear message: every name wolfSSL
 * does not know is reported; none usable for TLS <= 1.2 is an error. */
static int check_ciphers(struct tls_store *s, const char *list)
{
	WOLFSSL_CTX *probe = store_ctx_new(s);
	int r = 0;

	if (!probe) {
		log_error(TLS_LOG, "ssl-ciphers: no usable cipher in \"%s\"", s->ciphers);
		return -EINVAL;
	}
	if (list && s->min_version < TLS1_3_VERSION) {
		char *copy = strdup(list), *save = NULL;

		if (!copy) {
			wolfSSL_CTX_free(probe);
			return -ENOMEM;
		}
		for (char *t = strtok_r(copy, ":, ", &save); t; t = strtok_r(NULL, ":, ", &save))
			if (!strchr("!-+", t[0]) &&
			    wolfSSL_CTX_set_cipher_list(probe, t) != WOLFSSL_SUCCESS)
				log_warn(TLS_LOG, "ssl-ciphers: unknown cipher \"%s\" ignored", t);
		free(copy);
		if (wolfSSL_CTX_set_cipher_list(probe, list) != WOLFSSL_SUCCESS) {
			log_error(TLS_LOG, "ssl-ciphers: no usable cipher in \"%s\"", list);
			r = -EINVAL;
		}
	}
	wolfSSL_CTX_free(probe);
	return r;
}

struct tls_store *tls_store_new(const struct tls_options *o)
{
	static const struct tls_options defaults;
	struct tls_store *s;

	if (!o)
		o = &defaults;
	if (!fake_cert) {
		log_error(TLS_LOG, "tls_init has not run");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	atomic_init(&s->refs, 1);
	if (parse_protocols(o->protocols, &s->min_version, &s->max_version, &s->no_versions))
		goto err;
	s->tickets = !o->no_session_tickets;
	s->ticket_hint = (int)(o->ticket_lifetime_s ? o->ticket_lifetime_s : tls_ticket_period());
	s->ciphers = build_ciphers(o->ciphers, s->max_version);
	s->map = tls_sni_map_new();
	if (!s->ciphers || !s->map)
		goto err;

	if (check_ciphers(s, o->ciphers))
		goto err;
	s->def = cert_new(s, (const char *)fake_cert, (size_t)fake_cert_len,
			  (const char *)fake_key, (size_t)fake_key_len, FAKE_SECRET,
			  WOLFSSL_FILETYPE_ASN1);
	if (!s->def)
		goto err;
	return s;
err:
	tls_store_release(s);
	return NULL;
}

static void store_free(struct tls_store *s)
{
	for (size_t i = 0; i < s->ncerts; i++)
		cert_free(s->certs[i]);
	free(s->certs);
	cert_free(s->def);
	tls_sni_map_free(s->map);
	free(s->ciphers);
	free(s);
}

struct tls_store *tls_store_acquire(struct tls_store *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void tls_store_release(struct tls_store *s)
{
	if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		store_free(s);
}

int tls_store_add(struct tls_store *s, const char *const *hosts, size_t nhosts,
		  const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
		  const char *secret_name)
{
	struct tls_cert *c, **certs;
	size_t mapped = 0;

	if (s->ncerts == s->capcerts) {
		size_t cap = s->capcerts ? s->capcerts * 2 : 8;

		certs = realloc(s->certs, cap * sizeof(*certs));
		if (!certs)
			return -ENOMEM;
		s->certs = certs;
		s->capcerts = cap;
	}
	c = cert_new(s, cert_pem, cert_len, key_pem, key_len, secret_name, WOLFSSL_FILETYPE_PEM);
	if (!c) {
		tls_count(secret_errors);
		for (size_t i = 0; i < nhosts; i++)
			log_warn(TLS_LOG, "host %s: using the default certificate (secret %s refused)",
				 hosts[i], secret_name);
		return -EINVAL;
	}
	s->certs[s->ncerts++] = c;
	for (size_t i = 0; i < nhosts; i++) {
		int r;

		if (!cert_covers(c, hosts[i])) {
			log_warn(TLS_LOG,
				 "secret %s: certificate \"%s\" does not cover host %s: using the "
				 "default certificate for it",
				 secret_name, c->subject ? c->subject : "?", hosts[i]);
			continue;
		}
		r = tls_sni_map_add(s->map, hosts[i], c);
		if (r == -EEXIST) {
			const struct tls_cert *o =
				tls_sni_map_lookup(s->map, hosts[i], strlen(hosts[i]));
			log_warn(TLS_LOG, "host %s: already served by secret %s, secret %s ignored",
				 hosts[i], o ? o->secret : "?", secret_name);
		} else if (r == -EINVAL) {
			log_warn(TLS_LOG, "secret %s: \"%s\" is not a host name", secret_name,
				 hosts[i]);
		} else if (r) {
			return r;
		} else {
			mapped++;
		}
	}
	log_debug(TLS_LOG, "secret %s: %s, %zu of %zu hosts", secret_name,
		  c->subject ? c->subject : "?", mapped, nhosts);
	return 0;
}

int tls_store_set_default(struct tls_store *s, const char *cert_pem, size_t cert_len,
			  const char *key_pem, size_t key_len, const char *secret_name)
{
	struct tls_cert *c =
		cert_new(s, cert_pem, cert_len, key_pem, key_len, secret_name, WOLFSSL_FILETYPE_PEM);

	if (!c) {
		tls_count(secret_errors);
		log_warn(TLS_LOG, "default certificate: secret %s refused, keeping %s", secret_name,
			 s->def->secret);
		return -EINVAL;
	}
	cert_free(s->def);
	s->def = c;
	return 0;
}

const char *tls_store_select(const struct tls_store *s, const char *name, size_t len)
{
	return tls_store_pick(s, name, len)->secret;
}

size_t tls_store_count(const struct tls_store *s)
{
	return s->ncerts;
}
