/* harness.c - see harness.h. */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_MAX_PROCS 16

static struct {
	char dir[256];
	char manifests[300];
	pid_t pid[H_MAX_PROCS];
	int nproc;
	bool ready;
	bool atexit_done;
	int lock_fd;
	pid_t owner; /* the process that ran h_setup (forks must not tear down) */
} H;

/* ---- setup / teardown ---- */

static void rm_rf(const char *path)
{
	/* The directory holds only files and one level of directories. */
	char cmd[PATH_MAX + 32];
	if (!*path || strncmp(path, "/tmp/", 5))
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "harness: could not remove %s\n", path);
}

void h_setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (H.ready)
		return;
	/* Tests use fixed ports: two runs of the suite at once (two shells,
	 * `zig build test` twice) would collide. One test at a time machine-wide;
	 * the lock dies with the test process. */
	H.lock_fd = open("/tmp/ringress-it.lock", O_CREAT | O_RDWR | O_CLOEXEC, 0666);
	if (H.lock_fd >= 0)
		while (flock(H.lock_fd, LOCK_EX) < 0 && errno == EINTR)
			;
	strcpy(H.dir, "/tmp/ringress-it.XXXXXX");
	if (!mkdtemp(H.dir)) {
		perror("harness: mkdtemp");
		abort();
	}
	snprintf(H.manifests, sizeof(H.manifests), "%s/m", H.dir);
	mkdir(H.manifests, 0755);
	H.nproc = 0;
	H.owner = getpid();
	H.ready = true;
	if (!H.atexit_done) {
		atexit(h_teardown);
		H.atexit_done = true;
	}
}

void h_teardown(void)
{
	if (!H.ready || getpid() != H.owner)
		return;
	for (int i = 0; i < H.nproc; i++)
		if (H.pid[i] > 0)
			kill(-H.pid[i], SIGTERM);
	int64_t deadline = h_now_ms() + 1500;
	for (int i = 0; i < H.nproc; i++) {
		if (H.pid[i] <= 0)
			continue;
		while (waitpid(H.pid[i], NULL, WNOHANG) == 0) {
			if (h_now_ms() > deadline) {
				kill(-H.pid[i], SIGKILL);
				waitpid(H.pid[i], NULL, 0);
				break;
			}
			h_sleep_ms(10);
		}
		kill(-H.pid[i], SIGKILL); /* stragglers of the group */
		H.pid[i] = 0;
	}
	H.nproc = 0;
	if (getenv("RINGRESS_KEEP_TMP"))
		fprintf(stderr, "harness: kept %s\n", H.dir);
	else
		rm_rf(H.dir);
	H.ready = false;
	if (H.lock_fd > 0) {
		close(H.lock_fd); /* releases the flock */
		H.lock_fd = -1;
	}
}

const char *h_dir(void)
{
	return H.dir;
}

const char *h_manifests(void)
{
	return H.manifests;
}

/* ---- time ---- */

int64_t h_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- processes ---- */

pid_t h_spawn(const char *name, char *const argv[])
{
	if (!H.ready)
		h_setup();
	if (H.nproc == H_MAX_PROCS)
		return -EMFILE;
	char log[PATH_MAX];
	snprintf(log, sizeof(log), "%s/%s.log", H.dir, name);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		int nul = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (nul >= 0)
			dup2(nul, 0);
		signal(SIGPIPE, SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(argv[0], argv);
		fprintf(stderr, "harness: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	H.pid[H.nproc++] = pid;
	return pid;
}

static const char *env_bin(const char *var, const char *rel)
{
	const char *v = getenv(var);
	if (v && *v)
		return v;
	static char buf[2][PATH_MAX];
	const char *root = getenv("RINGRESS_ROOT");
	char *b = buf[rel[strlen(rel) - 1] == 'o'];
	snprintf(b, PATH_MAX, "%s/%s", root && *root ? root : ".", rel);
	return b;
}

pid_t h_echo(const char *name, int port)
{
	char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	char *argv[] = {(char *)env_bin("RINGRESS_ECHO", "zig-out/bin/ringress-echo"), "--listen", listen,
			"--name", (char *)name, NULL};
	char logname[64];
	snprintf(logname, sizeof(logname), "echo-%s-%d", name, port);
	pid_t pid = h_spawn(logname, argv);
	if (pid < 0)
		return pid;
	if (!h_wait_port(port, 3000))
		return -ETIMEDOUT;
	return pid;
}

static pid_t ringress_v(int http, int admin, va_list ap)
{
	char hp[16], ap_[16];
	snprintf(hp, sizeof(hp), "%d", http);
	snprintf(ap_, sizeof(ap_), "%d", admin);
	char *argv[64] = {(char *)env_bin("RINGRESS_BIN", "zig-out/bin/ringress"),
			  "--manifests", H.manifests, "--bind", "127.0.0.1", "--http-port", hp,
			  "--admin-port", ap_, "--log-level", "debug", "--https-port", "0"};
	int n = 13;
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 63)
		argv[n++] = (char *)a;
	argv[n] = NULL;
	return h_spawn("ringress", argv);
}

pid_t h_ringress(int http, int admin, ...)
{
	va_list ap;
	va_start(ap, admin);
	pid_t p = ringress_v(http, admin, ap);
	va_end(ap);
	return p;
}

pid_t h_ringress_ready(int http, int admin, ...)
{
	va_list ap;
	va_start(ap, admin);
	pid_t p = ringress_v(http, admin, ap);
	va_end(ap);
	if (p < 0)
		return p;
	if (!h_wait_ready(admin, 5000) || !h_wait_port(http, 1000))
		return -ETIMEDOUT;
	return p;
}

int h_signal(pid_t pid, int sig)
{
	return kill(pid, sig) < 0 ? -errno : 0;
}

static void forget(pid_t pid)
{
	for (int i = 0; i < H.nproc; i++)
		if (H.pid[i] == pid)
			H.pid[i] = 0;
}

int h_wait_exit(pid_t pid, int timeout_ms, int *status)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			if (status)
				*status = st;
			kill(-pid, SIGKILL); /* anything it left in its group */
			forget(pid);
			return 0;
		}
		if (r < 0)
			return -errno;
		if (h_now_ms() >= deadline)
			return -ETIMEDOUT;
		h_sleep_ms(10);
	}
}

bool h_alive(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

long h_rss_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long kb = -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6)) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

const char *h_log_tail(const char *name, size_t max)
{
	static char buf[8192];
	char path[PATH_MAX];
	if (max >= sizeof(buf))
		max = sizeof(buf) - 1;
	snprintf(path, sizeof(path), "%s/%s.log", H.dir, name);
	buf[0] = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return buf;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, sz > (long)max ? sz - (long)max : 0, SEEK_SET);
	size_t n = fread(buf, 1, max, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* ---- sockets ---- */

static int connect_to(int port, int timeout_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS) {
			int e = -errno;
			close(fd);
			return e;
		}
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		if (poll(&p, 1, timeout_ms) <= 0) {
			close(fd);
			return -ETIMEDOUT;
		}
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			close(fd);
			return -err;
		}
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

bool h_wait_port(int port, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	do {
		int fd = connect_to(port, 200);
		if (fd >= 0) {
			close(fd);
			return true;
		}
		h_sleep_ms(20);
	} while (h_now_ms() < deadline);
	return false;
}

bool h_wait_ready(int admin_port, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	do {
		struct h_resp r;
		if (h_get(&r, admin_port, "localhost", "/readyz") == 0 && r.status == 200) {
			h_resp_free(&r);
			return true;
		}
		h_resp_free(&r);
		h_sleep_ms(50);
	} while (h_now_ms() < deadline);
	return false;
}

/* ---- files ---- */

static int write_path(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		p += n;
		len -= n;
	}
	return close(fd) < 0 ? -errno : 0;
}

static int vwrite(const char *rel, bool atomic, const char *fmt, va_list ap)
{
	char *data = NULL;
	int len = vasprintf(&data, fmt, ap);
	if (len < 0)
		return -ENOMEM;
	char path[PATH_MAX], tmp[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/%s", H.dir, rel);
	int r;
	if (atomic) {
		/* The temporary name is a dot file outside the manifests folder
		 * listing's interest (and in the same directory for rename). */
		const char *slash = strrchr(path, '/');
		snprintf(tmp, sizeof(tmp), "%.*s/.tmp-%s", (int)(slash - path), path, slash + 1);
		r = write_path(tmp, data, len);
		if (!r && rename(tmp, path) < 0)
			r = -errno;
	} else {
		r = write_path(path, data, len);
	}
	free(data);
	return r;
}

int h_write(const char *rel, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vwrite(rel, false, fmt, ap);
	va_end(ap);
	return r;
}

int h_write_atomic(const char *rel, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vwrite(rel, true, fmt, ap);
	va_end(ap);
	return r;
}

int h_remove(const char *rel)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", H.dir, rel);
	return unlink(path) < 0 ? -errno : 0;
}

int h_failmalloc_preload(const char *threads, int permille)
{
	const char *so = getenv("RINGRESS_FAILMALLOC");
	char flag[PATH_MAX], pm[16];
	if (!so || access(so, R_OK))
		return -ENOENT;
	snprintf(flag, sizeof(flag), "%s/failmalloc.on", H.dir);
	snprintf(pm, sizeof(pm), "%d", permille);
	if (setenv("LD_PRELOAD", so, 1) || setenv("RINGRESS_FAILMALLOC_FILE", flag, 1) ||
	    setenv("RINGRESS_FAILMALLOC_THREADS", threads, 1) ||
	    setenv("RINGRESS_FAILMALLOC_PERMILLE", pm, 1))
		return -errno;
	return 0;
}

void h_failmalloc_spawned(void)
{
	unsetenv("LD_PRELOAD");
}

int h_failmalloc_on(bool on)
{
	return on ? h_write("failmalloc.on", "on\n") : h_remove("failmalloc.on");
}

static char *xasprintf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s)
		abort();
	return s;
}

char *h_yaml_class(void)
{
	return xasprintf("apiVersion: networking.k8s.io/v1\n"
			 "kind: IngressClass\n"
			 "metadata:\n"
			 "  name: ringress\n"
			 "spec:\n"
			 "  controller: ringress.io/ingress-controller\n");
}

char *h_yaml_backend(const char *ns, const char *svc, int port, bool ready)
{
	return xasprintf("apiVersion: v1\n"
			 "kind: Service\n"
			 "metadata:\n"
			 "  name: %s\n"
			 "  namespace: %s\n"
			 "spec:\n"
			 "  ports:\n"
			 "    - name: http\n"
			 "      port: 80\n"
			 "      targetPort: %d\n"
			 "---\n"
			 "apiVersion: discovery.k8s.io/v1\n"
			 "kind: EndpointSlice\n"
			 "metadata:\n"
			 "  name: %s-x1\n"
			 "  namespace: %s\n"
			 "  labels:\n"
			 "    kubernetes.io/service-name: %s\n"
			 "addressType: IPv4\n"
			 "ports:\n"
			 "  - name: http\n"
			 "    port: %d\n"
			 "endpoints:\n"
			 "  - addresses: [\"127.0.0.1\"]\n"
			 "    conditions:\n"
			 "      ready: %s\n",
			 svc, ns, port, svc, ns, svc, port, ready ? "true" : "false");
}

char *h_yaml_ingress(const char *ns, const char *name, const char *host, const char *path,
		     const char *ptype, const char *svc)
{
	char hostline[300] = "";
	if (host)
		snprintf(hostline, sizeof(hostline), "    - host: \"%s\"\n      http:\n", host);
	else
		snprintf(hostline, sizeof(hostline), "    - http:\n");
	return xasprintf("apiVersion: networking.k8s.io/v1\n"
			 "kind: Ingress\n"
			 "metadata:\n"
			 "  name: %s\n"
			 "  namespace: %s\n"
			 "spec:\n"
			 "  ingressClassName: ringress\n"
			 "  rules:\n"
			 "%s"
			 "        paths:\n"
			 "          - path: %s\n"
			 "            pathType: %s\n"
			 "            backend:\n"
			 "              service:\n"
			 "                name: %s\n"
			 "                port:\n"
			 "                  number: 80\n",
			 name, ns, hostline, path, ptype, svc);
}

/* ---- responses ---- */

void h_resp_free(struct h_resp *r)
{
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static char *rot_buf(void)
{
	static char bufs[8][4096];
	static int i;
	return bufs[i++ & 7];
}

/* Finds header name in a head; returns a pointer to its value and its
 * length, starting the search at *from (updated). */
static const char *find_header(const char *head, const char *name, size_t *vlen, const char **from)
{
	size_t nl = strlen(name);
	const char *p = *from ? *from : head;
	if (p == head) { /* skip the status line */
		p = strstr(head, "\r\n");
		if (!p)
			return NULL;
		p += 2;
	}
	while (*p && !(p[0] == '\r' && p[1] == '\n')) {
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			eol = p + strlen(p);
		const char *colon = memchr(p, ':', eol - p);
		if (colon && (size_t)(colon - p) == nl && !strncasecmp(p, name, nl)) {
			const char *v = colon + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			const char *e = eol;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			*vlen = e - v;
			*from = *eol ? eol + 2 : eol;
			return v;
		}
		p = *eol ? eol + 2 : eol;
	}
	return NULL;
}

const char *h_header(const struct h_resp *r, const char *name)
{
	if (!r->head)
		return NULL;
	size_t vl;
	const char *from = NULL;
	const char *v = find_header(r->head, name, &vl, &from);
	if (!v)
		return NULL;
	char *b = rot_buf();
	if (vl > 4095)
		vl = 4095;
	memcpy(b, v, vl);
	b[vl] = 0;
	return b;
}

int h_header_count(const struct h_resp *r, const char *name)
{
	if (!r->head)
		return 0;
	int n = 0;
	size_t vl;
	const char *from = NULL;
	while (find_header(r->head, name, &vl, &from))
		n++;
	return n;
}

const char *h_echo_value(const struct h_resp *r, const char *key)
{
	if (!r->body)
		return NULL;
	size_t kl = strlen(key);
	const char *p = r->body;
	while (p && *p) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			const char *v = p + kl + 1;
			size_t vl = strcspn(v, "\n");
			char *b = rot_buf();
			if (vl > 4095)
				vl = 4095;
			memcpy(b, v, vl);
			b[vl] = 0;
			return b;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc(sz + 1);
	size_t n = b ? fread(b, 1, sz, f) : 0;
	fclose(f);
	if (b)
		b[n] = 0;
	if (len)
		*len = n;
	return b;
}

int h_curl(struct h_resp *r, const char *arg, ...)
{
	memset(r, 0, sizeof(*r));
	if (!H.ready)
		h_setup();
	char bodyf[PATH_MAX], headf[PATH_MAX], outf[PATH_MAX];
	snprintf(bodyf, sizeof(bodyf), "%s/curl.body", H.dir);
	snprintf(headf, sizeof(headf), "%s/curl.head", H.dir);
	snprintf(outf, sizeof(outf), "%s/curl.out", H.dir);
	unlink(bodyf);
	unlink(headf);
	char *argv[64] = {"curl", "-sS", "--max-time", "10", "-o", bodyf, "-D", headf, "-w", "%{http_code}"};
	int n = 10;
	va_list ap;
	va_start(ap, arg);
	for (const char *a = arg; a && n < 63; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(outf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0)
			dup2(fd, 1);
		char errf[PATH_MAX];
		snprintf(errf, sizeof(errf), "%s/curl.err", H.dir);
		int ef = open(errf, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (ef >= 0)
			dup2(ef, 2);
		execvp("curl", argv);
		_exit(127);
	}
	int st = 0;
	int64_t deadline = h_now_ms() + 15000;
	while (waitpid(pid, &st, WNOHANG) == 0) {
		if (h_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		h_sleep_ms(5);
	}
	char *out = slurp(outf, NULL);
	if (out) {
		r->status = atoi(out);
		free(out);
	}
	size_t hl = 0;
	char *head = slurp(headf, &hl);
	if (head) {
		/* Keep the last header block (after 1xx ones), counting the 1xx. */
		char *last = head, *p = head;
		while (p && *p) {
			char *end = strstr(p, "\r\n\r\n");
			if (!end)
				break;
			if (!strncmp(p, "HTTP/", 5)) {
				int st1 = atoi(p + 9);
				if (st1 >= 100 && st1 < 200 && r->n_interim < 8)
					r->interim[r->n_interim++] = st1;
			}
			last = p;
			p = end + 4;
		}
		r->head = strdup(last);
		free(head);
		if (r->n_interim && r->interim[r->n_interim - 1] == r->status)
			r->n_interim--; /* the final block was counted as interim (1xx final) */
	}
	r->body = slurp(bodyf, &r->body_len);
	if (!r->body) {
		r->body = strdup("");
		r->body_len = 0;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ---- raw client ---- */

int h_conn_open(struct h_conn *c, int port, int timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	int fd = connect_to(port, timeout_ms);
	if (fd < 0)
		return fd;
	c->fd = fd;
	return 0;
}

void h_conn_close(struct h_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

int h_conn_send(struct h_conn *c, const void *data, size_t len, int timeout_ms)
{
	const char *p = data;
	int64_t deadline = h_now_ms() + timeout_ms;
	while (len) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		int left = (int)(deadline - h_now_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pf = {.fd = c->fd, .events = POLLOUT};
		poll(&pf, 1, left);
	}
	return 0;
}

int h_conn_sendf(struct h_conn *c, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	int r = h_conn_send(c, s, n, 5000);
	free(s);
	return r;
}

/* Reads more bytes into c->buf. Returns bytes read (>0), 0 on EOF,
 * -ETIMEDOUT, or -errno. */
static int fill(struct h_conn *c, int64_t deadline)
{
	if (c->eof)
		return 0;
	if (c->cap - c->len < 65536) {
		size_t cap = c->cap ? c->cap * 2 : 131072;
		while (cap - c->len < 65536)
			cap *= 2;
		char *b = realloc(c->buf, cap);
		if (!b)
			return -ENOMEM;
		c->buf = b;
		c->cap = cap;
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (n > 0) {
			c->len += n;
			c->buf[c->len] = 0;
			return (int)n;
		}
		if (n == 0) {
			c->eof = true;
			return 0;
		}
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		int left = (int)(deadline - h_now_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pf = {.fd = c->fd, .events = POLLIN};
		poll(&pf, 1, left);
	}
}

static void consume(struct h_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	if (c->buf)
		c->buf[c->len] = 0;
}

/* Offset just past the end of the head in c->buf, or 0 when incomplete. */
static size_t head_end(const struct h_conn *c)
{
	if (!c->buf)
		return 0;
	char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
	return e ? (size_t)(e - c->buf) + 4 : 0;
}

static int closed_err(int r)
{
	return r == 0 ? -EPIPE : r;
}

int h_conn_wait_head(struct h_conn *c, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	while (!head_end(c)) {
		int r = fill(c, deadline);
		if (r <= 0)
			return closed_err(r);
	}
	return 0;
}

static int body_append(struct h_resp *r, const char *p, size_t n)
{
	char *b = realloc(r->body, r->body_len + n + 1);
	if (!b)
		return -ENOMEM;
	memcpy(b + r->body_len, p, n);
	r->body = b;
	r->body_len += n;
	b[r->body_len] = 0;
	return 0;
}

int h_conn_response(struct h_conn *c, struct h_resp *r, bool head, int timeout_ms)
{
	memset(r, 0, sizeof(*r));
	int64_t deadline = h_now_ms() + timeout_ms;
	size_t he;
	for (;;) {
		while (!(he = head_end(c))) {
			int n = fill(c, deadline);
			if (n <= 0)
				return closed_err(n);
		}
		if (strncmp(c->buf, "HTTP/1.", 7) || c->len < 12)
			return -EPROTO;
		int st = atoi(c->buf + 9);
		if (st >= 100 && st < 200 && st != 101) {
			if (r->n_interim < 8)
				r->interim[r->n_interim] = st;
			r->n_interim++;
			consume(c, he);
			continue;
		}
		r->status = st;
		r->head = strndup(c->buf, he);
		consume(c, he);
		break;
	}
	r->body = strdup("");
	if (head || r->status == 204 || r->status == 304 || r->status == 101)
		return 0;
	const char *te = h_header(r, "Transfer-Encoding");
	const char *cl = h_header(r, "Content-Length");
	if (te && strcasestr(te, "chunked")) {
		r->chunked = true;
		for (;;) {
			char *eol;
			while (!(eol = c->buf ? memmem(c->buf, c->len, "\r\n", 2) : NULL)) {
				int n = fill(c, deadline);
				if (n <= 0)
					return closed_err(n);
			}
			char *endp;
			unsigned long long sz = strtoull(c->buf, &endp, 16);
			if (endp == c->buf)
				return -EPROTO;
			size_t line = eol - c->buf + 2;
			if (sz == 0) {
				/* trailers until an empty line */
				consume(c, line);
				for (;;) {
					while (!(eol = c->buf ? memmem(c->buf, c->len, "\r\n", 2) : NULL)) {
						int n = fill(c, deadline);
						if (n <= 0)
							return closed_err(n);
					}
					size_t l = eol - c->buf + 2;
					consume(c, l);
					if (l == 2)
						return 0;
				}
			}
			while (c->len < line + sz + 2) {
				int n = fill(c, deadline);
				if (n <= 0)
					return closed_err(n);
			}
			if (memcmp(c->buf + line + sz, "\r\n", 2))
				return -EPROTO;
			if (body_append(r, c->buf + line, sz))
				return -ENOMEM;
			consume(c, line + sz + 2);
		}
	}
	if (cl) {
		r->has_length = true;
		size_t want = strtoull(cl, NULL, 10);
		while (c->len < want) {
			int n = fill(c, deadline);
			if (n <= 0)
				return closed_err(n);
		}
		if (body_append(r, c->buf, want))
			return -ENOMEM;
		consume(c, want);
		return 0;
	}
	/* Until EOF. */
	for (;;) {
		int n = fill(c, deadline);
		if (n < 0)
			return n;
		if (n == 0)
			break;
	}
	if (body_append(r, c->buf, c->len))
		return -ENOMEM;
	consume(c, c->len);
	return 0;
}

int h_conn_wait_closed(struct h_conn *c, int timeout_ms)
{
	int64_t deadline = h_now_ms() + timeout_ms;
	for (;;) {
		int n = fill(c, deadline);
		if (n == 0 || n == -ECONNRESET || n == -EPIPE)
			return 0;
		if (n == -ETIMEDOUT)
			return -ETIMEDOUT;
		if (n < 0)
			return 0;
	}
}

int h_get(struct h_resp *r, int port, const char *host, const char *target)
{
	memset(r, 0, sizeof(*r));
	struct h_conn c;
	int e = h_conn_open(&c, port, 2000);
	if (e)
		return e;
	if (host)
		e = h_conn_sendf(&c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host);
	else
		e = h_conn_sendf(&c, "GET %s HTTP/1.1\r\nConnection: close\r\n\r\n", target);
	if (!e)
		e = h_conn_response(&c, r, false, 5000);
	h_conn_close(&c);
	return e;
}

/* ---- misc ---- */

uint32_t h_crc32(uint32_t crc, const void *data, size_t len)
{
	static uint32_t table[256];
	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t v = i;
			for (int k = 0; k < 8; k++)
				v = v & 1 ? 0xEDB88320u ^ (v >> 1) : v >> 1;
			table[i] = v;
		}
	const unsigned char *p = data;
	crc = ~crc;
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

void h_pattern(char *dst, size_t len, uint64_t offset)
{
	static const char a[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";
	for (size_t i = 0; i < len; i++)
		dst[i] = a[(offset + i) & 63];
}

int h_listen(int port, int backlog)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	int one = 1;
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, backlog) < 0) {
		int e = -errno;
		close(l);
		return e;
	}
	return l;
}

int h_accept(int l, int timeout_ms)
{
	struct pollfd p = {.fd = l, .events = POLLIN};
	if (poll(&p, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	int fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static uint64_t lcg_next(uint64_t *seed)
{
	*seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
	return *seed >> 33;
}

void h_random_pieces(char *dst, int *n, size_t cap, uint64_t *seed, const char *const *piece,
		     int max_pieces)
{
	int npiece = 0;
	while (piece[npiece])
		npiece++;
	for (int k = 1 + (int)(lcg_next(seed) % (uint64_t)max_pieces); k > 0; k--) {
		const char *p = piece[lcg_next(seed) % (uint64_t)npiece];
		size_t l = strlen(p);
		if ((size_t)*n + l >= cap)
			break;
		memcpy(dst + *n, p, l);
		*n += (int)l;
	}
}
