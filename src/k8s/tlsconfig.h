/* tlsconfig.h - Ingress spec.tls: certificates from kubernetes.io/tls
 * Secrets and the hosts that redirect plain HTTP to HTTPS. */
#ifndef RINGRESS_K8S_TLSCONFIG_H
#define RINGRESS_K8S_TLSCONFIG_H

#include "core/snapshot.h"
#include "k8s/store.h"

#include <stddef.h>

/* Adds the certificates of an Ingress's spec.tls to b, reading each
 * Secret (same namespace, type kubernetes.io/tls, data tls.crt and tls.key)
 * from s. A missing or invalid Secret is logged with the Ingress's and the
 * Secret's names and skipped (its hosts get the default certificate). Hosts
 * of spec.tls redirect plain HTTP to HTTPS (308) unless the annotation
 * nginx.ingress.kubernetes.io/ssl-redirect is "false"; force-ssl-redirect
 * "true" redirects every host of the Ingress's rules. Returns the number of
 * certificates added or -ENOMEM. */
int k8s_tls_add_ingress(const struct k8s_store *s, const struct k8s_object *ing,
			struct snapshot_builder *b);

/* Adds the Secret "ns/name" (--default-ssl-certificate) as the default
 * certificate (no hosts). A missing or invalid Secret is logged; the
 * self-signed certificate stays. Returns 1, 0 or -ENOMEM. */
int k8s_tls_add_default(const struct k8s_store *s, const char *ns_name,
			struct snapshot_builder *b);

#endif
