/* main.c - composition root: flags, shards, control thread, admin, signals.
 * The only file that sees core and k8s together. */
#include "core/admin.h"
#include "core/config-t.h"
#include "core/log.h"
#include "core/shard.h"
#include "core/snapshot-t.h"
#include "core/units.h"
#include "k8s/controller.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RINGRESS_VERSION "0.1.0"

enum flag_kind {
	F_STRING, F_PORT, F_INT, F_UINT, F_DURATION, F_SIZE, F_BOOL, F_LEVEL,
	F_CHOICE, /* one word of flag->words, stored as a uint8_t */
	F_WORDS,  /* words of flag->words (space or comma separated), OR-ed as a uint32_t */
};

struct options {
	struct core_config core;
	struct k8s_options k8s;
	uint64_t shards;
	uint64_t keepalive_requests, upstream_keepalive_requests;
	uint64_t http_port, admin_port;
	uint64_t max_header_size;
	uint64_t max_fails, next_upstream_tries, upstream_keepalive_conns, batch_wait_usec;
	uint64_t batch_busy_percent;
	const char *log_level;
	uint64_t https_port, hsts_max_age;
	bool hsts, hsts_subdomains;
	struct tls_options tls;
};

static struct options opt;
static uint64_t sync_period_ms;
static uint64_t status_update_interval_ms, election_ttl_ms;

/* A word a flag accepts and the value it stands for. */
struct word {
	const char *name;
	uint32_t value;
};

static const struct word lb_words[] = {{"round_robin", SNAP_LB_ROUND_ROBIN},
				       {"ewma", SNAP_LB_EWMA},
				       {"least_request", SNAP_LB_LEAST_REQUEST},
				       {NULL, 0}};
static const struct word splice_words[] = {{"off", SPLICE_MODE_OFF},
					   {"poll", SPLICE_MODE_POLL},
					   {"uring", SPLICE_MODE_URING},
					   {NULL, 0}};
static const struct word next_words[] = {{"error", NEXT_UPSTREAM_ERROR},
					 {"timeout", NEXT_UPSTREAM_TIMEOUT},
					 {"off", 0},
					 {NULL, 0}};

struct flag {
	const char *name;
	enum flag_kind kind;
	void *dst;
	const char *def; /* default as written on the command line; NULL: none */
	const char *help;
	const struct word *words; /* F_CHOICE and F_WORDS */
};

/* Every flag, its default and its help line: --help and docs/configuration.md
 * list exactly these. */
static const struct flag flags[] = {
	{"manifests", F_STRING, &opt.k8s.manifests, NULL,
	 "File or directory of Kubernetes YAML/JSON manifests to serve (instead of the API server)", NULL},
	{"kubeconfig", F_STRING, &opt.k8s.kubeconfig, NULL,
	 "Kubeconfig file to reach the API server (default: in-cluster service account)", NULL},
	{"kube-context", F_STRING, &opt.k8s.kube_context, NULL,
	 "Kubeconfig context to use (default: its current-context)", NULL},
	{"apiserver-host", F_STRING, &opt.k8s.apiserver_host, NULL,
	 "API server URL, overriding the kubeconfig's or the in-cluster one", NULL},
	{"serviceaccount-dir", F_STRING, &opt.k8s.serviceaccount_dir,
	 "/var/run/secrets/kubernetes.io/serviceaccount",
	 "Directory of the in-cluster token, ca.crt and namespace (token re-read every minute)", NULL},
	{"watch-namespace", F_STRING, &opt.k8s.watch_namespace, NULL,
	 "Namespace to watch for Ingresses, Services, EndpointSlices, Secrets (default: all)", NULL},
	{"configmap", F_STRING, &opt.k8s.configmap, NULL,
	 "NAMESPACE/NAME of the ConfigMap of global settings to watch", NULL},
	{"update-status", F_BOOL, &opt.k8s.update_status, "true",
	 "Write status.loadBalancer of our Ingresses (the elected leader only)", NULL},
	{"publish-service", F_STRING, &opt.k8s.publish_service, NULL,
	 "NAMESPACE/NAME of the Service whose load-balancer addresses go into Ingress status", NULL},
	{"publish-status-address", F_STRING, &opt.k8s.publish_status_address, NULL,
	 "Comma-separated addresses to put into Ingress status (instead of --publish-service)", NULL},
	{"status-update-interval", F_DURATION, &status_update_interval_ms, "60s",
	 "Time between two checks of the Ingress status", NULL},
	{"update-status-on-shutdown", F_BOOL, &opt.k8s.update_status_on_shutdown, "true",
	 "Remove the Ingress status on shutdown when no other ringress pod runs", NULL},
	{"election-id", F_STRING, &opt.k8s.election_id, "ingress-controller-leader",
	 "Name of the Lease used to elect the replica that writes status", NULL},
	{"election-ttl", F_DURATION, &election_ttl_ms, "30s",
	 "Lease duration of the leader election (renewed every ttl/4)", NULL},
	{"bind", F_STRING, &opt.core.bind, "0.0.0.0", "Address to listen on (IPv4 or IPv6)", NULL},
	{"http-port", F_PORT, &opt.http_port, "80", "Port for HTTP traffic", NULL},
	{"admin-port", F_PORT, &opt.admin_port, "10254", "Port for /healthz and /readyz", NULL},
	{"https-port", F_UINT, &opt.https_port, "443", "Port for HTTPS traffic (0 = no TLS listener)", NULL},
	{"default-ssl-certificate", F_STRING, &opt.k8s.default_ssl_certificate, NULL,
	 "NAMESPACE/NAME of the kubernetes.io/tls Secret served when no certificate matches the "
	 "SNI (default: a self-signed certificate made at start-up)", NULL},
	{"ssl-protocols", F_STRING, &opt.tls.protocols, "TLSv1.2 TLSv1.3",
	 "TLS versions accepted, space separated", NULL},
	{"ssl-ciphers", F_STRING, &opt.tls.ciphers, NULL,
	 "TLS 1.2 cipher suites, ':' separated (default: ingress-nginx's list)", NULL},
	{"hsts", F_BOOL, &opt.hsts, "true", "Send Strict-Transport-Security on HTTPS responses", NULL},
	{"hsts-max-age", F_UINT, &opt.hsts_max_age, "31536000", "HSTS max-age, in seconds", NULL},
	{"hsts-include-subdomains", F_BOOL, &opt.hsts_subdomains, "true",
	 "Add includeSubDomains to the HSTS header", NULL},
	{"shards", F_INT, &opt.shards, NULL,
	 "Shard threads, one per CPU (default: CPUs the process may run on)", NULL},
	{"ingress-class", F_STRING, &opt.k8s.ingress_class, "ringress",
	 "Ingress class name this controller serves", NULL},
	{"controller-class", F_STRING, &opt.k8s.controller_class, "ringress.io/ingress-controller",
	 "IngressClass spec.controller value this controller serves", NULL},
	{"watch-ingress-without-class", F_BOOL, &opt.k8s.watch_without_class, "false",
	 "Also serve Ingresses that name no class", NULL},
	{"client-header-timeout", F_DURATION, &opt.core.client_header_timeout_ms, "60s",
	 "Time allowed to read a request head", NULL},
	{"client-body-timeout", F_DURATION, &opt.core.client_body_timeout_ms, "60s",
	 "Time allowed between two reads of a request body or two writes to a client", NULL},
	{"keep-alive", F_DURATION, &opt.core.keepalive_timeout_ms, "75s",
	 "Idle time before a keep-alive client connection closes", NULL},
	{"keep-alive-requests", F_INT, &opt.keepalive_requests, "1000",
	 "Requests served on one client connection", NULL},
	{"proxy-connect-timeout", F_DURATION, &opt.core.proxy_connect_timeout_ms, "5s",
	 "Time allowed to connect to an upstream (504 after)", NULL},
	{"proxy-read-timeout", F_DURATION, &opt.core.proxy_read_timeout_ms, "60s",
	 "Time allowed between two reads from an upstream (504 after)", NULL},
	{"proxy-send-timeout", F_DURATION, &opt.core.proxy_send_timeout_ms, "60s",
	 "Time allowed between two writes to an upstream", NULL},
	{"upstream-keepalive-timeout", F_DURATION, &opt.core.upstream_keepalive_timeout_ms, "60s",
	 "Idle time before a kept-alive upstream connection closes", NULL},
	{"upstream-keepalive-requests", F_INT, &opt.upstream_keepalive_requests, "10000",
	 "Requests sent on one upstream connection", NULL},
	{"upstream-keepalive-connections", F_UINT, &opt.upstream_keepalive_conns, "320",
	 "Idle upstream connections kept per shard (0 = none)", NULL},
	{"proxy-body-size", F_SIZE, &opt.core.proxy_body_size, "1m",
	 "Largest request body (413 above; 0 = unlimited)", NULL},
	{"max-header-size", F_SIZE, &opt.max_header_size, "32k",
	 "Largest request head, request line and headers together (431 above)", NULL},
	{"load-balance", F_CHOICE, &opt.core.load_balance, "round_robin",
	 "round_robin, ewma or least_request (power of two choices); annotation load-balance",
	 lb_words},
	{"max-fails", F_UINT, &opt.max_fails, "3",
	 "Failures in a row (connect error, reset, 5xx) before an endpoint is skipped; 0 = never", NULL},
	{"fail-timeout", F_DURATION, &opt.core.fail_timeout_ms, "10s",
	 "How long a failing endpoint is skipped; doubles while it keeps failing (up to 8x)", NULL},
	{"proxy-next-upstream", F_WORDS, &opt.core.next_upstream, "error timeout",
	 "When a request may go to another endpoint: error, timeout, off", next_words},
	{"proxy-next-upstream-tries", F_INT, &opt.next_upstream_tries, "3",
	 "Endpoints tried at most per request", NULL},
	{"splice-mode", F_CHOICE, &opt.core.splice_mode, "poll",
	 "How large response bodies move: off (buffers), poll (splice(2) on the shard) or uring "
	 "(IORING_OP_SPLICE in io-wq)", splice_words},
	{"splice-threshold", F_SIZE, &opt.core.splice_threshold, "64k",
	 "Response bodies of at least this many bytes (Content-Length) are spliced", NULL},
	{"batch-wait-usec", F_UINT, &opt.batch_wait_usec, "100",
	 "On a busy shard with 16 or more requests in flight, the longest it waits for a batch "
	 "of completions before waking (microseconds; fewer wake-ups under load; 0 = wake for "
	 "each; Linux 6.12+)", NULL},
	{"batch-busy-percent", F_UINT, &opt.batch_busy_percent, "50",
	 "A shard batches its waits once it was busy (running or waiting for its CPU) this "
	 "share of the time, measured every 10 ms; it stops below four fifths of it "
	 "(0 = whenever 16 or more requests are in flight)", NULL},
	{"shutdown-timeout", F_DURATION, &opt.core.shutdown_timeout_ms, "30s",
	 "On SIGTERM, time allowed for requests in flight before connections are cut", NULL},
	{"sync-period", F_DURATION, &sync_period_ms, "200ms",
	 "Delay between a change (manifests or API server) and the rebuild of the configuration", NULL},
	{"log-level", F_LEVEL, &opt.log_level, "info", "error, warn, info or debug", NULL},
	{"version", F_BOOL, NULL, NULL, "Print the version and exit", NULL},
	{"help", F_BOOL, NULL, NULL, "Print this help and exit", NULL},
};
#define NFLAGS (sizeof(flags) / sizeof(flags[0]))

static void usage(FILE *f)
{
	fprintf(f, "Usage: ringress [--manifests PATH | --kubeconfig PATH] [flags]\n\n"
		   "io_uring HTTP/1.1 Kubernetes Ingress controller.\n"
		   "Durations: 60 (seconds), 60s, 500ms, 5m, 1h. Sizes: 1048576, 512k, 1m, 1g.\n\n");
	for (size_t i = 0; i < NFLAGS; i++) {
		char left[64];
		const char *arg = flags[i].kind == F_BOOL        ? ""
				  : flags[i].kind == F_DURATION ? " DURATION"
				  : flags[i].kind == F_SIZE     ? " SIZE"
				  : flags[i].kind == F_PORT || flags[i].kind == F_INT ||
					    flags[i].kind == F_UINT ? " N"
				  : flags[i].kind == F_LEVEL ? " LEVEL"
				  : flags[i].kind == F_CHOICE ? " WORD" : " VALUE";
		snprintf(left, sizeof(left), "--%s%s", flags[i].name, arg);
		fprintf(f, "  %-38s %s", left, flags[i].help);
		if (flags[i].def && strcmp(flags[i].def, "false"))
			fprintf(f, " (default %s)", flags[i].def);
		fputc('\n', f);
	}
}

/* "expected a, b or c" for a flag's words (static buffer). */
static const char *words_expected(const struct word *w, enum flag_kind kind)
{
	static char buf[160];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "expected %s",
				    kind == F_WORDS ? "words among " : "");
	for (int i = 0; w[i].name && n < sizeof(buf); i++) {
		const char *sep = !i ? "" : (w[i + 1].name || kind == F_WORDS) ? ", " : " or ";
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", sep, w[i].name);
	}
	return buf;
}

static _Noreturn void bad_flag(const char *name, const char *val, const char *why)
{
	fprintf(stderr, "ringress: invalid value \"%s\" for --%s: %s (see ringress --help)\n", val,
		name, why);
	exit(2);
}

/* Exits through bad_flag when a whole-number flag is above max. */
static void flag_at_most(const char *name, uint64_t val, uint64_t max, const char *why)
{
	if (val <= max)
		return;
	char v[24];
	snprintf(v, sizeof(v), "%" PRIu64, val);
	bad_flag(name, v, why);
}

static void set_flag(const struct flag *f, const char *val)
{
	uint64_t v;
	void *dst = f->dst;

	switch (f->kind) {
	case F_STRING:
		if (!*val)
			bad_flag(f->name, val, "must not be empty");
		*(const char **)dst = val;
		break;
	case F_LEVEL: {
		enum log_level l;
		if (log_parse_level(val, &l) < 0)
			bad_flag(f->name, val, "expected error, warn, info or debug");
		log_threshold = l;
		*(const char **)dst = val;
		break;
	}
	case F_PORT:
		if (units_parse_size(val, &v) < 0 || !v || v > 65535 || strpbrk(val, "kKmMgGbB"))
			bad_flag(f->name, val, "expected a port number from 1 to 65535");
		*(uint64_t *)dst = v;
		break;
	case F_INT:
		if (units_parse_size(val, &v) < 0 || !v || v > INT_MAX || strpbrk(val, "kKmMgGbB"))
			bad_flag(f->name, val, "expected a positive whole number");
		*(uint64_t *)dst = v;
		break;
	case F_UINT:
		if (units_parse_size(val, &v) < 0 || v > INT_MAX || strpbrk(val, "kKmMgGbB"))
			bad_flag(f->name, val, "expected a whole number");
		*(uint64_t *)dst = v;
		break;
	case F_CHOICE:
	case F_WORDS: {
		/* One word (F_CHOICE) or a list of them, spaces or commas between. */
		uint32_t m = 0;
		int n = 0;
		char buf[128];
		snprintf(buf, sizeof(buf), "%s", val);
		for (char *save, *w = strtok_r(buf, " ,", &save); w; w = strtok_r(NULL, " ,", &save)) {
			const struct word *k = f->words;
			while (k->name && strcmp(k->name, w))
				k++;
			if (!k->name || (f->kind == F_CHOICE && n))
				bad_flag(f->name, val, words_expected(f->words, f->kind));
			m = k->value ? m | k->value : 0; /* a word worth 0 ("off") clears */
			n++;
		}
		if (!n)
			bad_flag(f->name, val, words_expected(f->words, f->kind));
		if (f->kind == F_CHOICE)
			*(uint8_t *)dst = (uint8_t)m;
		else
			*(uint32_t *)dst = m;
		break;
	}
	case F_DURATION:
		if (units_parse_duration(val, &v) < 0)
			bad_flag(f->name, val, "expected a duration such as 60, 60s, 500ms or 5m");
		*(uint64_t *)dst = v;
		break;
	case F_SIZE:
		if (units_parse_size(val, &v) < 0)
			bad_flag(f->name, val, "expected a size such as 1048576, 512k or 1m");
		*(uint64_t *)dst = v;
		break;
	case F_BOOL:
		if (!strcmp(val, "true") || !strcmp(val, "1"))
			*(bool *)dst = true;
		else if (!strcmp(val, "false") || !strcmp(val, "0"))
			*(bool *)dst = false;
		else
			bad_flag(f->name, val, "expected true or false");
		break;
	}
}

static int allowed_cpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		return CPU_COUNT(&set);
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* True for "NAMESPACE/NAME". */
static bool ns_name(const char *s)
{
	const char *slash = strchr(s, '/');
	return slash && slash != s && slash[1] && !strchr(slash + 1, '/');
}

/* Exactly one configuration source: --manifests, or the API server. */
static void check_source(void)
{
	bool api = opt.k8s.kubeconfig || opt.k8s.apiserver_host || opt.k8s.kube_context;

	if (opt.k8s.manifests && api) {
		fprintf(stderr, "ringress: --manifests and --kubeconfig/--apiserver-host/"
				"--kube-context are alternatives: give one configuration source\n");
		exit(2);
	}
	if (opt.k8s.manifests) {
		if (access(opt.k8s.manifests, R_OK) < 0) {
			fprintf(stderr, "ringress: --manifests %s: %s\n", opt.k8s.manifests,
				strerror(errno));
			exit(2);
		}
		return;
	}
	if (!api && !getenv("KUBERNETES_SERVICE_HOST")) {
		fprintf(stderr, "ringress: no configuration source: give --manifests PATH (a "
				"YAML/JSON file or a directory of them), --kubeconfig PATH or "
				"--apiserver-host URL, or run in a cluster\n");
		exit(2);
	}
	if (opt.k8s.kube_context && !opt.k8s.kubeconfig) {
		fprintf(stderr, "ringress: --kube-context needs --kubeconfig\n");
		exit(2);
	}
	if (opt.k8s.kubeconfig && access(opt.k8s.kubeconfig, R_OK) < 0) {
		fprintf(stderr, "ringress: --kubeconfig %s: %s\n", opt.k8s.kubeconfig,
			strerror(errno));
		exit(2);
	}
	if (opt.k8s.configmap && !ns_name(opt.k8s.configmap))
		bad_flag("configmap", opt.k8s.configmap, "expected NAMESPACE/NAME");
	if (opt.k8s.publish_service && !ns_name(opt.k8s.publish_service))
		bad_flag("publish-service", opt.k8s.publish_service, "expected NAMESPACE/NAME");
	if (election_ttl_ms < 2000 || status_update_interval_ms < 1000) {
		fprintf(stderr, "ringress: --%s must be at least %s (see ringress --help)\n",
			election_ttl_ms < 2000 ? "election-ttl" : "status-update-interval",
			election_ttl_ms < 2000 ? "2s" : "1s");
		exit(2);
	}
}

static void parse_flags(int argc, char **argv)
{
	struct option longopts[NFLAGS + 1];

	for (size_t i = 0; i < NFLAGS; i++) {
		longopts[i] = (struct option){flags[i].name,
					      flags[i].kind == F_BOOL ? optional_argument
								      : required_argument,
					      NULL, (int)i + 256};
		if (flags[i].def && flags[i].dst)
			set_flag(&flags[i], flags[i].def);
	}
	longopts[NFLAGS] = (struct option){0};
	opterr = 0;
	for (;;) {
		int idx = -1;
		int c = getopt_long(argc, argv, "h", longopts, &idx);
		if (c == -1)
			break;
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == '?' || c == ':') {
			const char *bad = argv[optind - 1];
			if (optopt >= 256)
				fprintf(stderr, "ringress: --%s needs a value (see ringress --help)\n",
					flags[optopt - 256].name);
			else
				fprintf(stderr, "ringress: unknown flag %s (see ringress --help)\n",
					bad);
			exit(2);
		}
		const struct flag *f = &flags[c - 256];
		if (!strcmp(f->name, "help")) {
			usage(stdout);
			exit(0);
		}
		if (!strcmp(f->name, "version")) {
			printf("ringress %s\n", RINGRESS_VERSION);
			exit(0);
		}
		set_flag(f, f->kind == F_BOOL && !optarg ? "true" : optarg);
	}
	if (optind < argc) {
		fprintf(stderr, "ringress: unexpected argument \"%s\" (see ringress --help)\n",
			argv[optind]);
		exit(2);
	}
	check_source();
	struct in6_addr any;
	if (inet_pton(AF_INET, opt.core.bind, &any) != 1 && inet_pton(AF_INET6, opt.core.bind, &any) != 1)
		bad_flag("bind", opt.core.bind, "expected an IPv4 or IPv6 address such as 0.0.0.0 or ::");
	if (!opt.shards)
		opt.shards = (uint64_t)allowed_cpus();
	if (opt.max_header_size < 1024 || opt.max_header_size > (1u << 20))
		bad_flag("max-header-size", "", "must be between 1k and 1m");
	opt.core.nshards = (int)opt.shards;
	opt.core.http_port = (uint16_t)opt.http_port;
	opt.core.admin_port = (uint16_t)opt.admin_port;
	if (opt.https_port > 65535)
		bad_flag("https-port", "", "expected a port number from 0 to 65535");
	opt.core.https_port = (uint16_t)opt.https_port;
	if (opt.core.https_port && opt.core.https_port == opt.core.http_port)
		bad_flag("https-port", "", "must differ from --http-port");
	if (opt.core.https_port) {
		if (tls_init(0) < 0)
			exit(1);
		if (tls_options_check(&opt.tls) < 0)
			bad_flag("ssl-protocols", opt.tls.protocols ? opt.tls.protocols : "",
				 "or --ssl-ciphers not understood");
		opt.core.tls_ops = &tls_transport_ops;
		if (opt.hsts) {
			static char hsts[96];
			snprintf(hsts, sizeof(hsts), "Strict-Transport-Security: max-age=%llu%s\r\n",
				 (unsigned long long)opt.hsts_max_age,
				 opt.hsts_subdomains ? "; includeSubDomains" : "");
			opt.core.hsts = hsts;
		}
	}
	opt.core.keepalive_requests = (uint32_t)opt.keepalive_requests;
	opt.core.upstream_keepalive_requests = (uint32_t)opt.upstream_keepalive_requests;
	opt.core.max_header_size = (uint32_t)opt.max_header_size;
	opt.core.max_fails = (uint32_t)opt.max_fails;
	flag_at_most("batch-wait-usec", opt.batch_wait_usec, 10000,
		     "must be at most 10000 (10 ms); 0 turns batching off");
	opt.core.batch_wait_usec = (uint32_t)opt.batch_wait_usec;
	flag_at_most("batch-busy-percent", opt.batch_busy_percent, 100, "must be a percentage, 0 to 100");
	opt.core.batch_busy_pct = (uint8_t)opt.batch_busy_percent;
	opt.core.upstream_keepalive_conns = (uint32_t)opt.upstream_keepalive_conns;
	opt.core.next_upstream_tries = (uint32_t)opt.next_upstream_tries;
	opt.core.buf_size = 16384;
	opt.core.buf_count = 1024;
	opt.k8s.user_agent = "ringress/" RINGRESS_VERSION;
	opt.k8s.status_update_interval_ms = (uint32_t)status_update_interval_ms;
	opt.k8s.election_ttl_ms = (uint32_t)election_ttl_ms;
	opt.k8s.debounce_ms = (uint32_t)sync_period_ms;
	if (!opt.k8s.debounce_ms)
		opt.k8s.debounce_ms = 1;
}

static bool hook_healthy(void *arg)
{
	return shard_group_healthy(arg);
}

static bool hook_ready(void *arg)
{
	return shard_group_ready(arg);
}

/* Compiles the snapshot's certificates (control thread) before it goes to
 * the shards. */
static void attach_tls(struct snapshot *s)
{
	struct tls_store *st = tls_store_new(&opt.tls);
	if (!st) {
		log_error("main", "cannot build the TLS certificate store: HTTPS connections of "
				  "generation %llu are refused",
			  (unsigned long long)s->generation);
		return;
	}
	for (uint32_t i = 0; i < s->ntls; i++) {
		const struct snap_tls *t = &s->tls[i];
		if (t->nhosts)
			tls_store_add(st, t->hosts, t->nhosts, t->cert, t->cert_len, t->key, t->key_len,
				      t->name);
		else
			tls_store_set_default(st, t->cert, t->cert_len, t->key, t->key_len, t->name);
	}
	s->tls_ctx = st;
	s->tls_ctx_free = tls_transport_ops.ctx_free;
}

static void publish(struct snapshot *s, void *arg)
{
	/* An endpoint-only rebuild carries its predecessor's compiled
	 * certificates: they are compiled once per set of routes. */
	if (opt.core.https_port && !s->tls_ctx)
		attach_tls(s);
	shard_group_publish(arg, s);
}

int main(int argc, char **argv)
{
	sigset_t sigs;

	parse_flags(argc, argv);

	/* Only this thread takes signals; every thread started below inherits
	 * the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct shard_group *g = shard_group_start(&opt.core);
	if (!g)
		return 1;
	struct admin_hooks hooks = {.healthy = hook_healthy, .ready = hook_ready, .arg = g};
	struct admin *admin = admin_start(opt.core.bind, opt.core.admin_port, &hooks);
	if (!admin)
		return 1;
	struct k8s_controller *ctl = k8s_controller_start(&opt.k8s, publish, g);
	if (!ctl)
		return 1;
	log_info("main", "ringress %s serving on %s:%u (admin :%u, %d shards)", RINGRESS_VERSION,
		 opt.core.bind, opt.core.http_port, opt.core.admin_port, opt.core.nshards);

	for (;;) {
		int sig;
		if (sigwait(&sigs, &sig))
			continue;
		if (sig == SIGHUP)
			continue;
		log_info("main", "%s: stopping (draining for up to %llums)",
			 sig == SIGTERM ? "SIGTERM" : "SIGINT",
			 (unsigned long long)opt.core.shutdown_timeout_ms);
		break;
	}
	k8s_controller_stop(ctl);
	shard_group_stop(g);
	admin_stop(admin);
	log_info("main", "stopped");
	return 0;
}
