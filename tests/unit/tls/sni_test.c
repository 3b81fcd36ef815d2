/* sni_test.c - SNI host table: exact, one-label wildcard, nothing else. */
#include "tls/sni.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void *look(struct tls_sni_map *m, const char *name)
{
	return tls_sni_map_lookup(m, name, strlen(name));
}

static int A, B, C, D;

Test(sni, exact_case_and_trailing_dot)
{
	struct tls_sni_map *m = tls_sni_map_new();

	cr_assert_eq(tls_sni_map_add(m, "a.example.com", &A), 0);
	cr_assert_eq(tls_sni_map_add(m, "B.Example.COM.", &B), 0);
	cr_assert_eq(look(m, "a.example.com"), &A);
	cr_assert_eq(look(m, "A.EXAMPLE.COM"), &A);
	cr_assert_eq(look(m, "a.example.com."), &A);
	cr_assert_eq(look(m, "b.example.com"), &B);
	cr_assert_null(look(m, "c.example.com"));
	cr_assert_null(look(m, "example.com"));
	cr_assert_null(look(m, "a.example.co"));
	cr_assert_null(look(m, "a.example.comm"));
	/* Not NUL-terminated: only len bytes count. */
	cr_assert_eq(tls_sni_map_lookup(m, "a.example.comXYZ", 13), &A);
	cr_assert_eq(tls_sni_map_count(m), 2);
	tls_sni_map_free(m);
}

Test(sni, wildcard_one_label_only)
{
	struct tls_sni_map *m = tls_sni_map_new();

	cr_assert_eq(tls_sni_map_add(m, "*.example.com", &A), 0);
	cr_assert_eq(look(m, "a.example.com"), &A);
	cr_assert_eq(look(m, "WWW.example.com"), &A);
	cr_assert_eq(look(m, "x-1.example.com."), &A);
	cr_assert_null(look(m, "example.com"));       /* zero labels */
	cr_assert_null(look(m, "a.b.example.com"));   /* two labels */
	cr_assert_null(look(m, ".example.com"));      /* empty label */
	cr_assert_null(look(m, "*.example.com"));     /* a literal '*' never matches */
	cr_assert_null(look(m, "aexample.com"));
	cr_assert_null(look(m, "a.example.org"));
	tls_sni_map_free(m);
}

Test(sni, exact_beats_wildcard_and_deeper_wildcards)
{
	struct tls_sni_map *m = tls_sni_map_new();

	cr_assert_eq(tls_sni_map_add(m, "*.example.com", &A), 0);
	cr_assert_eq(tls_sni_map_add(m, "special.example.com", &B), 0);
	cr_assert_eq(tls_sni_map_add(m, "*.b.example.com", &C), 0);
	cr_assert_eq(tls_sni_map_add(m, "example.com", &D), 0);
	cr_assert_eq(look(m, "special.example.com"), &B);
	cr_assert_eq(look(m, "other.example.com"), &A);
	cr_assert_eq(look(m, "x.b.example.com"), &C);
	cr_assert_eq(look(m, "b.example.com"), &A); /* "b" is one label of *.example.com */
	cr_assert_eq(look(m, "example.com"), &D);
	cr_assert_null(look(m, "y.x.b.example.com"));
	tls_sni_map_free(m);
}

Test(sni, invalid_names)
{
	struct tls_sni_map *m = tls_sni_map_new();
	char longlabel[80], longname[300];

	memset(longlabel, 'a', 64);
	strcpy(longlabel + 64, ".com");
	for (int i = 0; i < 60; i++)
		memcpy(longname + i * 5, "abcd.", 5);
	strcpy(longname + 300 - 5, "com");

	cr_assert_eq(tls_sni_map_add(m, "", &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, ".", &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, "*", &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, "*.", &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, "a.*.com", &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, "*a.example.com", &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, "**.example.com", &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, "a..example.com", &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, "a example.com", &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, "a/b.com", &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, longlabel, &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, longname, &A), -EINVAL);
	cr_assert_eq(tls_sni_map_add(m, "a.example.com", NULL), -EINVAL);
	cr_assert_eq(tls_sni_map_count(m), 0);

	cr_assert_eq(tls_sni_map_add(m, "a.example.com", &A), 0);
	cr_assert_null(tls_sni_map_lookup(m, "a.exa\0ple.com", 13));
	cr_assert_null(tls_sni_map_lookup(m, "", 0));
	cr_assert_null(tls_sni_map_lookup(m, NULL, 3));
	cr_assert_null(look(m, longname));
	tls_sni_map_free(m);
}

Test(sni, duplicate_keeps_first)
{
	struct tls_sni_map *m = tls_sni_map_new();

	cr_assert_eq(tls_sni_map_add(m, "a.example.com", &A), 0);
	cr_assert_eq(tls_sni_map_add(m, "A.example.com.", &B), -EEXIST);
	cr_assert_eq(tls_sni_map_add(m, "*.example.com", &C), 0);
	cr_assert_eq(tls_sni_map_add(m, "*.EXAMPLE.com", &D), -EEXIST);
	cr_assert_eq(look(m, "a.example.com"), &A);
	cr_assert_eq(look(m, "z.example.com"), &C);
	cr_assert_eq(tls_sni_map_count(m), 2);
	tls_sni_map_free(m);
}

Test(sni, many_names_grow)
{
	struct tls_sni_map *m = tls_sni_map_new();
	static int vals[2000];
	char name[64];

	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), i % 2 ? "h%d.example.com" : "*.w%d.example.com", i);
		cr_assert_eq(tls_sni_map_add(m, name, &vals[i]), 0);
	}
	cr_assert_eq(tls_sni_map_count(m), 2000);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), i % 2 ? "h%d.example.com" : "x.w%d.example.com", i);
		cr_assert_eq(look(m, name), &vals[i], "%s", name);
	}
	cr_assert_null(look(m, "h2.example.com"));
	tls_sni_map_free(m);
}

Test(sni, empty_map_and_null)
{
	struct tls_sni_map *m = tls_sni_map_new();

	cr_assert_null(look(m, "a.example.com"));
	cr_assert_null(tls_sni_map_lookup(NULL, "a", 1));
	cr_assert_eq(tls_sni_map_count(NULL), 0);
	tls_sni_map_free(m);
	tls_sni_map_free(NULL);
}
