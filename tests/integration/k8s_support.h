/* k8s_support.h - what the Kubernetes API integration tests add to the
 * harness: the test API server (tests/support/kube-apiserver.py) with its
 * control interface, kubeconfig files, ringress started against it, and
 * Kubernetes objects as JSON.
 *
 * Ports: K_PORT(test index, n) = 30000 + idx*20 + n, n in 0..19; the
 * API server takes n = 0 (TLS) and 1 (control), ringress replicas n = 2..5
 * (http, admin pairs: 2/3 and 4/5), backends n >= 10. Keep idx below 138:
 * ports from 32768 up are the kernel's ephemeral range (client sockets of
 * other tests and benchmarks may hold them). */
#ifndef RINGRESS_IT_K8S_SUPPORT_H
#define RINGRESS_IT_K8S_SUPPORT_H

#include "harness.h"

#include <stdbool.h>
#include <sys/types.h>

#define K_PORT(idx, n) (30000 + (idx) * 20 + (n))
#define K_TOKEN "test-token-1"

/* ---- the test API server ---- */

/* Starts the API server of test idx (TLS with a CA made in h_dir()/tls,
 * bearer token K_TOKEN, objects kept in h_dir()/api-state.json across
 * restarts) and waits for its control port. Returns the pid or -errno. */
pid_t k_api_start(int idx);
/* Kills it (SIGKILL) and waits for it to exit. */
void k_api_kill(void);

/* One request to the control interface; body may be NULL. Returns the
 * HTTP status (0 on failure); the response body goes to *out when not NULL
 * (malloc'd, freed by the caller). */
int k_ctl(const char *method, const char *path, const char *body, char **out);
/* Creates or replaces objects: a JSON object, or {"items": [...]}. Asserts. */
void k_apply(const char *json);
/* Deletes kind ns/name (ns NULL for cluster-scoped). Asserts. */
void k_delete(const char *kind, const char *ns, const char *name);
/* The stored object as JSON text (malloc'd), or NULL when absent. */
char *k_get(const char *kind, const char *ns, const char *name);
/* Merges a JSON object into the server's configuration. Asserts. */
void k_config(const char *json);
/* Number of open watch streams. */
int k_watches(void);

/* ---- ringress ---- */

/* Writes h_dir()/name, a kubeconfig for the test API server of idx.
 * auth: "token" (K_TOKEN inline), "tokenfile" (h_dir()/token, containing
 * K_TOKEN), "cert" (client certificate and key as -data fields), "none".
 * Returns the path (static buffer). */
const char *k_kubeconfig(int idx, const char *name, const char *auth);
/* Starts ringress as name (its log: h_dir()/name.log) with --kubeconfig
 * kubeconfig, --bind 127.0.0.1, the given ports, --log-level debug and the
 * extra arguments (NULL-terminated). Does not wait. */
pid_t k_ringress(const char *name, const char *kubeconfig, int http, int admin, ...);
/* The replica's Lease identity ("host_pid"). */
const char *k_identity(pid_t pid);

/* ---- objects (malloc'd JSON) ---- */

/* IngressClass "ringress" of ringress.io/ingress-controller. */
char *k_json_class(void);
/* Service ns/svc (port 80, name http, targetPort port). */
char *k_json_service(const char *ns, const char *svc, int port);
/* EndpointSlice ns/<svc>-<suffix> for svc: 127.0.0.1:port, ready or not. */
char *k_json_slice(const char *ns, const char *svc, const char *suffix, int port, bool ready);
/* Ingress ns/name: host -> svc:80, with class (NULL: none). */
char *k_json_ingress(const char *ns, const char *name, const char *cls, const char *host,
		     const char *svc);
/* {"items": [a, b, ...]} from NULL-terminated JSON strings (freed). */
char *k_items(char *first, ...);

/* ---- traffic ---- */

/* GET / with Host host: the echo's service name, or "404", "503"..., or
 * "ERR<n>" (static rotating buffers). */
const char *k_route(int port, const char *host);
/* Polls k_route until it answers want or timeout_ms pass. */
bool k_wait_route(int port, const char *host, const char *want, int timeout_ms);
/* Polls until the log of name contains text. */
bool k_wait_log(const char *name, const char *text, int timeout_ms);
/* Polls until k_get(kind, ns, name) contains text (or, with absent, does
 * not contain it). */
bool k_wait_object(const char *kind, const char *ns, const char *name, const char *text,
		   bool absent, int timeout_ms);

#endif
