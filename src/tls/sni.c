/* sni.c - host name -> certificate table (open addressing, FNV-1a). */
#include "tls/sni.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sni_slot {
	char *name; /* normalised; NULL: empty slot */
	uint32_t hash;
	void *value;
};

struct tls_sni_map {
	struct sni_slot *slots;
	size_t cap; /* power of two */
	size_t count;
};

static uint32_t sni_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h;
}

int tls_sni_normalize(const char *in, size_t len, char *out, size_t cap, int wildcard)
{
	size_t label = 0; /* length of the current label */

	if (len && in[len - 1] == '.')
		len--;
	if (!len || len > TLS_SNI_NAME_MAX || cap < len + 1)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == '*') {
			/* Only "*." as the whole first label, followed by more. */
			if (!wildcard || i != 0 || len < 3 || in[1] != '.')
				return -EINVAL;
		} else if (c == '.') {
			if (!label || label > 63)
				return -EINVAL;
			label = 0;
			out[i] = c;
			continue;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			     c == '_')) {
			return -EINVAL;
		}
		out[i] = c;
		label++;
	}
	if (!label || label > 63)
		return -EINVAL;
	out[len] = '\0';
	return (int)len;
}

struct tls_sni_map *tls_sni_map_new(void)
{
	struct tls_sni_map *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->cap = 16;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	if (!m->slots) {
		free(m);
		return NULL;
	}
	return m;
}

void tls_sni_map_free(struct tls_sni_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].name);
	free(m->slots);
	free(m);
}

/* The slot holding name, or the empty slot where it would go. */
static struct sni_slot *sni_find(struct sni_slot *slots, size_t cap, const char *name, size_t len,
				 uint32_t h)
{
	for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
		struct sni_slot *s = &slots[i];

		if (!s->name || (s->hash == h && !strncmp(s->name, name, len) && !s->name[len]))
			return s;
	}
}

static int sni_grow(struct tls_sni_map *m)
{
	size_t cap = m->cap * 2;
	struct sni_slot *slots = calloc(cap, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		struct sni_slot *o = &m->slots[i];

		if (o->name)
			*sni_find(slots, cap, o->name, strlen(o->name), o->hash) = *o;
	}
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	return 0;
}

int tls_sni_map_add(struct tls_sni_map *m, const char *host, void *value)
{
	char name[TLS_SNI_NAME_MAX + 1];
	int len;

	if (!host || !value)
		return -EINVAL;
	len = tls_sni_normalize(host, strlen(host), name, sizeof(name), 1);
	if (len < 0)
		return len;
	if ((m->count + 1) * 2 > m->cap && sni_grow(m))
		return -ENOMEM;

	uint32_t h = sni_hash(name, (size_t)len);
	struct sni_slot *s = sni_find(m->slots, m->cap, name, (size_t)len, h);

	if (s->name)
		return -EEXIST;
	s->name = strdup(name);
	if (!s->name)
		return -ENOMEM;
	s->hash = h;
	s->value = value;
	m->count++;
	return 0;
}

static void *sni_get(const struct tls_sni_map *m, const char *name, size_t len)
{
	struct sni_slot *s = sni_find(m->slots, m->cap, name, len, sni_hash(name, len));

	return s->name ? s->value : NULL;
}

void *tls_sni_map_lookup(const struct tls_sni_map *m, const char *name, size_t len)
{
	char buf[TLS_SNI_NAME_MAX + 3];
	int n;
	void *v;

	if (!m || !name || !m->count)
		return NULL;
	n = tls_sni_normalize(name, len, buf + 1, sizeof(buf) - 1, 0);
	if (n < 0)
		return NULL;
	v = sni_get(m, buf + 1, (size_t)n);
	if (v)
		return v;

	/* "a.example.com" -> "*.example.com": replace the first label. */
	char *dot = memchr(buf + 1, '.', (size_t)n);

	if (!dot)
		return NULL;
	char *w = dot - 1; /* w[0] = '*', w[1] = '.' */

	w[0] = '*';
	return sni_get(m, w, (size_t)(buf + 1 + n - w));
}

size_t tls_sni_map_count(const struct tls_sni_map *m)
{
	return m ? m->count : 0;
}
