/* units.c - durations and sizes from flags. */
#include "core/units.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

/* Parses the leading decimal number; returns the suffix or NULL on error. */
static const char *parse_number(const char *s, uint64_t *v)
{
	uint64_t n = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return NULL;
	for (; isdigit((unsigned char)*p); p++) {
		if (n > (UINT64_MAX - 9) / 10)
			return NULL;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*v = n;
	return p;
}

static int scale(uint64_t v, uint64_t mul, uint64_t *out)
{
	if (mul && v > UINT64_MAX / mul)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

int units_parse_duration(const char *s, uint64_t *ms)
{
	uint64_t v;
	const char *suf = parse_number(s, &v);

	if (!suf)
		return -EINVAL;
	if (!*suf || !strcmp(suf, "s"))
		return scale(v, 1000, ms);
	if (!strcmp(suf, "ms"))
		return scale(v, 1, ms);
	if (!strcmp(suf, "m"))
		return scale(v, 60 * 1000, ms);
	if (!strcmp(suf, "h"))
		return scale(v, 3600 * 1000, ms);
	return -EINVAL;
}

int units_parse_size(const char *s, uint64_t *bytes)
{
	uint64_t v;
	const char *suf = parse_number(s, &v);

	if (!suf)
		return -EINVAL;
	if (!*suf || !strcasecmp(suf, "b"))
		return scale(v, 1, bytes);
	uint64_t mul;
	switch (tolower((unsigned char)suf[0])) {
	case 'k':
		mul = 1ull << 10;
		break;
	case 'm':
		mul = 1ull << 20;
		break;
	case 'g':
		mul = 1ull << 30;
		break;
	default:
		return -EINVAL;
	}
	if (suf[1] && (strcasecmp(suf + 1, "b") || suf[2]))
		return -EINVAL;
	return scale(v, mul, bytes);
}
