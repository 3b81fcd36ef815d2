/* apiclient.c - libcurl multi interface on the control thread.
 *
 * Why the multi interface and not a thread per watch: the control thread
 * already owns the object store and the translation; with every transfer
 * in one curl_multi_poll() loop, watch events are applied to the store
 * directly in the write callback, with no queue, no lock and no thread to
 * stop. Slow or dead transfers never block the others (libcurl does
 * non-blocking I/O), and a stop request is one more fd in the same poll. */
#include "k8s/apiclient.h"

#include "core/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TAG "k8s-api"
#define TOKEN_REREAD_MS 60000
#define ERROR_BODY_MAX (64u << 10)
#define BODY_MAX (1u << 30)

struct k8s_call {
	struct k8s_api *api;
	CURL *easy;
	struct curl_slist *headers;
	k8s_data_fn data;
	k8s_done_fn done;
	void *arg;
	unsigned flags;
	int abort;      /* what the data callback returned, 0 if none */
	bool dead;      /* cancelled or finished: free at the end of the run */
	bool cancelled; /* by the owner: never call done */
	char *body;     /* buffered response */
	size_t len, cap;
	char err[CURL_ERROR_SIZE];
	struct k8s_call *next, *prev; /* active list */
};

struct k8s_api {
	const struct k8s_conn_config *conn;
	CURLM *multi;
	char *user_agent;
	char *token;           /* current bearer token, or NULL */
	long long token_read;  /* when the token file was read (ms), 0: never */
	struct k8s_call *calls; /* active */
	struct k8s_call *dead;  /* to free after the current run */
	size_t active;
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void token_clear(struct k8s_api *api)
{
	if (api->token) {
		explicit_bzero(api->token, strlen(api->token));
		free(api->token);
		api->token = NULL;
	}
}

/* Reads the token file when due; keeps the previous token when the file
 * cannot be read (a rotation in progress). */
static void token_refresh(struct k8s_api *api)
{
	const struct k8s_conn_config *c = api->conn;
	char buf[16384];
	long long now = now_ms();

	if (!c->token_file || (api->token_read && now - api->token_read < TOKEN_REREAD_MS))
		return;
	api->token_read = now;
	int fd = open(c->token_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		log_warn(TAG, "token file %s: %s%s", c->token_file, strerror(errno),
			 api->token ? " (keeping the previous token)" : "");
		return;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0) {
		log_warn(TAG, "token file %s: %s", c->token_file, n < 0 ? strerror(errno) : "empty");
		return;
	}
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	if (api->token && !strcmp(api->token, buf)) {
		explicit_bzero(buf, sizeof(buf));
		return;
	}
	char *t = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	if (!t)
		return;
	if (api->token)
		log_info(TAG, "token file %s: new token", c->token_file);
	token_clear(api);
	api->token = t;
}

void k8s_api_token_expired(struct k8s_api *api)
{
	api->token_read = 0;
}

struct k8s_api *k8s_api_new(const struct k8s_conn_config *conn, const char *user_agent)
{
	struct k8s_api *api = calloc(1, sizeof(*api));

	if (!api)
		goto err;
	api->conn = conn;
	api->user_agent = strdup(user_agent ? user_agent : "ringress");
	api->multi = curl_multi_init();
	if (!api->user_agent || !api->multi)
		goto err;
	/* Watches are long-lived: allow as many connections as calls. */
	curl_multi_setopt(api->multi, CURLMOPT_MAXCONNECTS, 64L);
	if (conn->token)
		api->token = strdup(conn->token);
	token_refresh(api);
	return api;
err:
	log_error(TAG, "cannot create the API client: out of memory");
	if (api) {
		if (api->multi)
			curl_multi_cleanup(api->multi);
		free(api->user_agent);
		free(api);
	}
	return NULL;
}

static void call_free(struct k8s_call *c)
{
	if (c->easy)
		curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->headers);
	free(c->body);
	free(c);
}

/* Moves a call out of the active list to the dead list. */
static void call_kill(struct k8s_api *api, struct k8s_call *c)
{
	if (c->dead)
		return;
	curl_multi_remove_handle(api->multi, c->easy);
	c->dead = true;
	if (c->prev)
		c->prev->next = c->next;
	else
		api->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = api->dead;
	api->dead = c;
	api->active--;
}

static void reap(struct k8s_api *api)
{
	while (api->dead) {
		struct k8s_call *c = api->dead;
		api->dead = c->next;
		call_free(c);
	}
}

void k8s_api_free(struct k8s_api *api)
{
	if (!api)
		return;
	while (api->calls)
		call_kill(api, api->calls);
	reap(api);
	curl_multi_cleanup(api->multi);
	token_clear(api);
	free(api->user_agent);
	free(api);
}

static int append(struct k8s_call *c, const char *p, size_t n, size_t max)
{
	if (c->len + n > max)
		return -E2BIG;
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 16384;
		while (cap < c->len + n + 1)
			cap *= 2;
		char *b = realloc(c->body, cap);
		if (!b)
			return -ENOMEM;
		c->body = b;
		c->cap = cap;
	}
	memcpy(c->body + c->len, p, n);
	c->len += n;
	c->body[c->len] = '\0';
	return 0;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct k8s_call *c = arg;
	size_t n = size * nmemb;
	long status = 0;
	int r;

	if (!n)
		return 0;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	if ((c->flags & K8S_CALL_STREAM) && status >= 200 && status < 300)
		r = c->data ? c->data(p, n, c->arg) : 0;
	else
		r = append(c, p, n, (c->flags & K8S_CALL_STREAM) ? ERROR_BODY_MAX : BODY_MAX);
	if (r < 0) {
		c->abort = r;
		return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
	}
	return n;
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return -EPROTO;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

struct k8s_call *k8s_api_call(struct k8s_api *api, const char *method, const char *path,
			      const char *body, const char *content_type, unsigned flags,
			      long timeout_ms, k8s_data_fn data, k8s_done_fn done, void *arg)
{
	const struct k8s_conn_config *conn = api->conn;
	struct k8s_call *c = calloc(1, sizeof(*c));
	char *url = NULL, *auth = NULL, *ctype = NULL;
	bool ok = true;

	if (!c)
		goto err;
	c->api = api;
	c->data = data;
	c->done = done;
	c->arg = arg;
	c->flags = flags;
	c->easy = curl_easy_init();
	if (!c->easy || asprintf(&url, "%s%s", conn->server, path) < 0) {
		url = NULL;
		goto err;
	}
	token_refresh(api);
	if (api->token) {
		if (asprintf(&auth, "Authorization: Bearer %s", api->token) < 0) {
			auth = NULL;
			goto err;
		}
	}
	if (content_type && asprintf(&ctype, "Content-Type: %s", content_type) < 0) {
		ctype = NULL;
		goto err;
	}
	struct curl_slist *h;
	const char *hdrs[] = {"Accept: application/json", auth, ctype};
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		if (!hdrs[i])
			continue;
		if (!(h = curl_slist_append(c->headers, hdrs[i])))
			goto err;
		c->headers = h;
	}
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
		auth = NULL;
	}
	free(ctype);
	ctype = NULL;

	CURL *e = c->easy;
	ok &= curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_USERAGENT, api->user_agent) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_PRIVATE, c) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_WRITEDATA, c) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->err) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L) == CURLE_OK;
	ok &= curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L) == CURLE_OK;
	/* Like client-go: https_proxy / no_proxy from the environment apply
	 * (libcurl's default). */
	if (timeout_ms > 0)
		ok &= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK;
	if (conn->ca_file) {
		/* The cluster's CA only, as client-go: not also the system's
		 * CA directory, which libcurl would otherwise add (and parse,
		 * hundreds of certificates, for every new connection). */
		ok &= curl_easy_setopt(e, CURLOPT_CAINFO, conn->ca_file) == CURLE_OK;
		/* Not built in (a TLS backend without CA paths): none to drop. */
		(void)curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	}
	if (conn->insecure) {
		ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L) == CURLE_OK;
	}
	if (conn->cert_file) {
		ok &= curl_easy_setopt(e, CURLOPT_SSLCERT, conn->cert_file) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_SSLKEY, conn->key_file) == CURLE_OK;
	}
	if (strcmp(method, "GET"))
		ok &= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) == CURLE_OK;
	if (body) {
		ok &= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) == CURLE_OK;
		ok &= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) == CURLE_OK;
	}
	free(url);
	url = NULL;
	if (!ok) {
		log_error(TAG, "%s %s: cannot set up the request", method, path);
		goto err;
	}
	if (curl_multi_add_handle(api->multi, e) != CURLM_OK)
		goto err;
	c->next = api->calls;
	if (api->calls)
		api->calls->prev = c;
	api->calls = c;
	api->active++;
	log_debug(TAG, "%s %s", method, path);
	return c;

err:
	if (!ok)
		; /* already logged */
	else
		log_error(TAG, "%s %s: out of memory", method, path);
	free(url);
	free(auth);
	free(ctype);
	if (c)
		call_free(c);
	return NULL;
}

void k8s_api_cancel(struct k8s_api *api, struct k8s_call *call)
{
	if (call) {
		call->cancelled = true;
		call_kill(api, call);
	}
}

int k8s_api_run(struct k8s_api *api, int timeout_ms, int extra_fd)
{
	struct curl_waitfd wfd = {.fd = extra_fd, .events = CURL_WAIT_POLLIN};
	int running = 0, numfds = 0, ret = 0;
	CURLMsg *m;
	int left;

	if (timeout_ms < 0)
		timeout_ms = 0;
	curl_multi_poll(api->multi, extra_fd >= 0 ? &wfd : NULL, extra_fd >= 0 ? 1 : 0,
			timeout_ms, &numfds);
	if (extra_fd >= 0 && (wfd.revents & CURL_WAIT_POLLIN))
		ret = 1;
	curl_multi_perform(api->multi, &running);

	/* Collect the finished calls first: done callbacks may cancel others. */
	struct k8s_call *finished = NULL;
	while ((m = curl_multi_info_read(api->multi, &left))) {
		struct k8s_call *c = NULL;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		if (!c || c->dead)
			continue;
		c->abort = c->abort ? c->abort : curl_errno(m->data.result);
		call_kill(api, c);
		/* call_kill pushed it on api->dead: move it to finished. */
		api->dead = c->next;
		c->next = finished;
		finished = c;
	}
	/* Run in completion order. */
	struct k8s_call *rev = NULL;
	while (finished) {
		struct k8s_call *c = finished;
		finished = c->next;
		c->next = rev;
		rev = c;
	}
	while (rev) {
		struct k8s_call *c = rev;
		long status = 0;
		rev = c->next;
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status == 401)
			k8s_api_token_expired(api);
		if (c->done && !c->cancelled)
			c->done(c->abort, status, c->body ? c->body : "", c->len, c->err, c->arg);
		call_free(c);
	}
	reap(api);
	return ret;
}

size_t k8s_api_active(const struct k8s_api *api)
{
	return api->active;
}

const char *k8s_url_escape(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (!len)
		return buf;
	for (; *s && o + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			buf[o++] = (char)ch;
		} else {
			if (o + 3 >= len)
				break;
			buf[o++] = '%';
			buf[o++] = hex[ch >> 4];
			buf[o++] = hex[ch & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}
