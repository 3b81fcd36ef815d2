/* units_test.c - durations and sizes. */
#include "core/units.h"

#include <criterion/criterion.h>
#include <errno.h>

static uint64_t dur(const char *s)
{
	uint64_t v = 12345;
	cr_assert_eq(units_parse_duration(s, &v), 0, "'%s'", s);
	return v;
}

static uint64_t size(const char *s)
{
	uint64_t v = 12345;
	cr_assert_eq(units_parse_size(s, &v), 0, "'%s'", s);
	return v;
}

Test(units, durations)
{
	cr_expect_eq(dur("60"), 60000);
	cr_expect_eq(dur("60s"), 60000);
	cr_expect_eq(dur("500ms"), 500);
	cr_expect_eq(dur("5m"), 300000);
	cr_expect_eq(dur("1h"), 3600000);
	cr_expect_eq(dur("0"), 0);
}

Test(units, durations_rejected)
{
	const char *bad[] = { "", "s", "-1", "-5s", "1x", "1 s", " 1", "1.5s", "ms",
			      "5mm", "1sec", "18446744073709551616",
			      "18446744073709551615s", "99999999999999999h" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;
		cr_expect_eq(units_parse_duration(bad[i], &v), -EINVAL, "'%s'", bad[i]);
	}
}

Test(units, sizes)
{
	cr_expect_eq(size("1m"), 1048576);
	cr_expect_eq(size("512k"), 524288);
	cr_expect_eq(size("1048576"), 1048576);
	cr_expect_eq(size("2g"), 2147483648ull);
	cr_expect_eq(size("1mb"), 1048576);
	cr_expect_eq(size("1MB"), 1048576);
	cr_expect_eq(size("4K"), 4096);
	cr_expect_eq(size("100b"), 100);
}

Test(units, sizes_rejected)
{
	const char *bad[] = { "", "k", "-1", "1t", "1kk", "1kbb", "1 k", "x1",
			      "1.5m", "18446744073709551616", "17179869184g" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 7;
		cr_expect_eq(units_parse_size(bad[i], &v), -EINVAL, "'%s'", bad[i]);
	}
}
