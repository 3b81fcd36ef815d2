/* yaml_test.c - YAML stream to cJSON conversion. */
#include "k8s/yaml.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static struct k8s_yaml_doc *docs;
static size_t ndocs;

static void fini(void)
{
	k8s_yaml_docs_free(docs, ndocs);
	docs = NULL;
	ndocs = 0;
}

static int parse(const char *y, struct k8s_yaml_error *err)
{
	return k8s_yaml_parse(y, strlen(y), &docs, &ndocs, err);
}

TestSuite(yaml, .fini = fini);

Test(yaml, multi_document_with_lines)
{
	const char *y = "# comment\n"
			"a: 1\n"
			"---\n"
			"b: two\n"
			"---\n"
			"\n"
			"- x\n";
	cr_assert_eq(parse(y, NULL), 0);
	cr_assert_eq(ndocs, 3);
	cr_assert_eq(docs[0].line, 2);
	cr_assert_eq(docs[1].line, 4);
	cr_assert_eq(docs[2].line, 7);
	cr_assert_eq(cJSON_GetObjectItem(docs[0].root, "a")->valuedouble, 1);
	cr_assert_str_eq(cJSON_GetObjectItem(docs[1].root, "b")->valuestring, "two");
	cr_assert(cJSON_IsArray(docs[2].root));
}

Test(yaml, scalar_types)
{
	const char *y = "int: 8080\n"
			"neg: -3\n"
			"hex: 0x1F\n"
			"float: 1.5e3\n"
			"t: true\n"
			"f: False\n"
			"n: null\n"
			"tilde: ~\n"
			"empty:\n"
			"quoted_int: \"8080\"\n"
			"single_bool: 'true'\n"
			"str_tag: !!str 42\n"
			"int_tag: !!int \"42\"\n"
			"word: yes\n"
			"version: 1.2.3\n"
			"block: |\n  line1\n  line2\n";
	cr_assert_eq(parse(y, NULL), 0);
	cJSON *r = docs[0].root;
	cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(r, "int")));
	cr_assert_eq(cJSON_GetObjectItem(r, "int")->valuedouble, 8080);
	cr_assert_eq(cJSON_GetObjectItem(r, "neg")->valuedouble, -3);
	cr_assert_eq(cJSON_GetObjectItem(r, "hex")->valuedouble, 31);
	cr_assert_eq(cJSON_GetObjectItem(r, "float")->valuedouble, 1500);
	cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(r, "t")));
	cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "f")));
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "n")));
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "tilde")));
	cr_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "empty")));
	cr_assert_str_eq(cJSON_GetObjectItem(r, "quoted_int")->valuestring, "8080");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "single_bool")->valuestring, "true");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "str_tag")->valuestring, "42");
	cr_assert_eq(cJSON_GetObjectItem(r, "int_tag")->valuedouble, 42);
	cr_assert_str_eq(cJSON_GetObjectItem(r, "word")->valuestring, "yes");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "version")->valuestring, "1.2.3");
	cr_assert_str_eq(cJSON_GetObjectItem(r, "block")->valuestring, "line1\nline2\n");
}

Test(yaml, flow_collections_and_json)
{
	cr_assert_eq(parse("{\"a\": [1, \"b\", {c: d}], \"e\": {}}", NULL), 0);
	cr_assert_eq(ndocs, 1);
	cJSON *a = cJSON_GetObjectItem(docs[0].root, "a");
	cr_assert_eq(cJSON_GetArraySize(a), 3);
	cr_assert_str_eq(cJSON_GetArrayItem(a, 1)->valuestring, "b");
	cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 2), "c")->valuestring, "d");
}

Test(yaml, anchors_and_aliases)
{
	const char *y = "base: &b {port: 80}\n"
			"copy: *b\n"
			"&k key: v\n"
			"again: *k\n";
	cr_assert_eq(parse(y, NULL), 0);
	cJSON *r = docs[0].root;
	cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "copy"), "port")->valuedouble, 80);
	cr_assert_str_eq(cJSON_GetObjectItem(r, "again")->valuestring, "key");
}

Test(yaml, empty_stream_and_documents)
{
	cr_assert_eq(parse("", NULL), 0);
	cr_assert_eq(ndocs, 0);
	cr_assert_eq(parse("---\n---\n", NULL), 0);
	cr_assert_eq(ndocs, 2);
	cr_assert(cJSON_IsNull(docs[0].root));
}

Test(yaml, syntax_error_reports_line_and_column)
{
	struct k8s_yaml_error err;
	const char *y = "a: 1\n"
			"b: [1, 2\n"
			"c: 3\n";
	cr_assert_eq(parse(y, &err), -EINVAL);
	cr_assert_null(docs);
	cr_assert_eq(ndocs, 0);
	cr_assert_eq(err.line, 3, "line %u: %s", err.line, err.msg);
	cr_assert_gt(err.column, 0);
	cr_assert_neq(strstr(err.msg, "expected"), NULL, "%s", err.msg);
}

Test(yaml, bad_indentation_error)
{
	struct k8s_yaml_error err;
	cr_assert_eq(parse("a:\n  b: 1\n c: 2\n", &err), -EINVAL);
	cr_assert_eq(err.line, 3, "line %u: %s", err.line, err.msg);
}

Test(yaml, duplicate_key_is_error)
{
	struct k8s_yaml_error err;
	cr_assert_eq(parse("x: 1\ny: 2\nx: 3\n", &err), -EINVAL);
	cr_assert_eq(err.line, 3);
	cr_assert_neq(strstr(err.msg, "duplicate"), NULL, "%s", err.msg);
}

Test(yaml, complex_key_and_unknown_alias_are_errors)
{
	struct k8s_yaml_error err;
	cr_assert_eq(parse("? [a, b]\n: 1\n", &err), -EINVAL);
	cr_assert_eq(parse("a: *nope\n", &err), -EINVAL);
	cr_assert_neq(strstr(err.msg, "nope"), NULL, "%s", err.msg);
}

Test(yaml, alias_bomb_is_bounded)
{
	/* Each level doubles: 2^25 nodes if expanded; must fail, not explode. */
	char y[4096];
	size_t off = (size_t)snprintf(y, sizeof(y), "l0: &a0 [x, x]\n");
	for (int i = 1; i <= 25; i++)
		off += (size_t)snprintf(y + off, sizeof(y) - off, "l%d: &a%d [*a%d, *a%d]\n", i, i,
					i - 1, i - 1);
	struct k8s_yaml_error err;
	cr_assert_eq(parse(y, &err), -EINVAL);
	cr_assert_neq(strstr(err.msg, "too many"), NULL, "%s", err.msg);
}
