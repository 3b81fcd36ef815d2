/* sni.h - host name -> certificate table for SNI selection.
 *
 * Pure C, no wolfSSL: the certificate store fills one map per snapshot on the
 * control thread, then shards only look names up (read-only, no locks).
 * Selection rule (ingress-nginx): the exact host, then a wildcard host
 * "*.example.com" covering exactly one more label ("a.example.com", not
 * "example.com" nor "a.b.example.com"); otherwise NULL (the caller uses the
 * default certificate). Names are compared case-insensitively, a trailing dot
 * is ignored. */
#ifndef RINGRESS_TLS_SNI_H
#define RINGRESS_TLS_SNI_H

#include <stddef.h>

/* Longest DNS name, without the trailing dot. */
#define TLS_SNI_NAME_MAX 253

struct tls_sni_map;

/* New empty map. Returns NULL on allocation failure. */
struct tls_sni_map *tls_sni_map_new(void);

/* Frees the map (not the values). NULL is fine. */
void tls_sni_map_free(struct tls_sni_map *m);

/* Maps host ("a.example.com" or "*.example.com") to value (not NULL).
 * Returns 0; -EEXIST when host is already mapped (the first value stays);
 * -EINVAL for a name that is not a host name (empty, too long, bad
 * characters, '*' other than as the whole first label, "*" alone);
 * -ENOMEM. */
int tls_sni_map_add(struct tls_sni_map *m, const char *host, void *value);

/* The value for a server name received in SNI (len bytes, not
 * NUL-terminated, untrusted), following the selection rule above; NULL when
 * nothing matches or the name is not a valid host name (a literal '*' never
 * matches). */
void *tls_sni_map_lookup(const struct tls_sni_map *m, const char *name, size_t len);

/* Number of names mapped. */
size_t tls_sni_map_count(const struct tls_sni_map *m);

/* Normalises a host name into out (cap >= TLS_SNI_NAME_MAX + 1): lower case,
 * no trailing dot. wildcard allows "*." as the first label. Returns the
 * length, or -EINVAL. */
int tls_sni_normalize(const char *in, size_t len, char *out, size_t cap, int wildcard);

#endif
