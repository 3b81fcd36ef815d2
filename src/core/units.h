/* units.h - parsing of durations and sizes given on the command line. */
#ifndef RINGRESS_UNITS_H
#define RINGRESS_UNITS_H

#include <stdint.h>

/* Parses a duration: "60" (seconds), "60s", "500ms", "5m", "1h".
 * Stores milliseconds in *ms. Returns 0 or -EINVAL (empty, junk, negative,
 * overflow). */
int units_parse_duration(const char *s, uint64_t *ms);

/* Parses a size: "1048576" (bytes), "512k", "1m", "2g" (case-insensitive,
 * binary multiples, optional trailing "b"). Returns 0 or -EINVAL. */
int units_parse_size(const char *s, uint64_t *bytes);

#endif
