/* watch_test.c - watch stream framing at arbitrary chunk boundaries, event
 * parsing and object checks (JSON edge cases). */
#include "k8s/watch.h"
#include "k8s_test.h"

#include <errno.h>

struct lines {
	char text[64][256];
	size_t n;
	int fail_at; /* return -EIO on this line (1-based), 0 never */
};

static int collect(const char *line, size_t len, void *arg)
{
	struct lines *l = arg;
	cr_assert_lt(l->n, 64);
	cr_assert_lt(len, 256);
	memcpy(l->text[l->n], line, len);
	l->text[l->n][len] = '\0';
	l->n++;
	return l->fail_at && (int)l->n == l->fail_at ? -EIO : 0;
}

static const char stream[] =
	"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n"
	"{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\"}}}\r\n"
	"\n"
	"   \n"
	"{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"c\"}}}\n"
	"{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"9\"}}}\n";

static void check_lines(const struct lines *l)
{
	cr_assert_eq(l->n, 4);
	cr_assert(strstr(l->text[0], "\"a\"") && l->text[0][strlen(l->text[0]) - 1] == '}');
	cr_assert(strstr(l->text[1], "\"b\"") && l->text[1][strlen(l->text[1]) - 1] == '}',
		  "CR kept: %s", l->text[1]);
	cr_assert(strstr(l->text[2], "\"c\""));
	cr_assert(strstr(l->text[3], "BOOKMARK"));
}

Test(watch, framing_whole_stream)
{
	struct k8s_linebuf lb = {0};
	struct lines l = {0};

	cr_assert_eq(k8s_linebuf_feed(&lb, stream, strlen(stream), collect, &l), 0);
	check_lines(&l);
	cr_assert_eq(k8s_linebuf_pending(&lb), 0);
	k8s_linebuf_free(&lb);
}

Test(watch, framing_every_two_way_split)
{
	size_t len = strlen(stream);

	for (size_t cut = 0; cut <= len; cut++) {
		struct k8s_linebuf lb = {0};
		struct lines l = {0};
		cr_assert_eq(k8s_linebuf_feed(&lb, stream, cut, collect, &l), 0);
		cr_assert_eq(k8s_linebuf_feed(&lb, stream + cut, len - cut, collect, &l), 0);
		check_lines(&l);
		k8s_linebuf_free(&lb);
	}
}

Test(watch, framing_byte_by_byte_and_random_chunks)
{
	size_t len = strlen(stream);
	struct k8s_linebuf lb = {0};
	struct lines l = {0};

	for (size_t i = 0; i < len; i++)
		cr_assert_eq(k8s_linebuf_feed(&lb, stream + i, 1, collect, &l), 0);
	check_lines(&l);
	k8s_linebuf_free(&lb);

	unsigned seed = 42;
	for (int round = 0; round < 200; round++) {
		struct lines m = {0};
		size_t off = 0;
		while (off < len) {
			size_t n = 1 + (size_t)rand_r(&seed) % 40;
			if (n > len - off)
				n = len - off;
			cr_assert_eq(k8s_linebuf_feed(&lb, stream + off, n, collect, &m), 0);
			off += n;
		}
		check_lines(&m);
	}
	k8s_linebuf_free(&lb);
}

Test(watch, framing_partial_tail_and_reset)
{
	struct k8s_linebuf lb = {0};
	struct lines l = {0};

	cr_assert_eq(k8s_linebuf_feed(&lb, "{\"a\":1}\n{\"b\"", 12, collect, &l), 0);
	cr_assert_eq(l.n, 1);
	cr_assert_eq(k8s_linebuf_pending(&lb), 4);
	k8s_linebuf_reset(&lb); /* the stream restarted */
	cr_assert_eq(k8s_linebuf_feed(&lb, "{\"c\":3}\n", 8, collect, &l), 0);
	cr_assert_eq(l.n, 2);
	cr_assert_str_eq(l.text[1], "{\"c\":3}");
	k8s_linebuf_free(&lb);
}

Test(watch, framing_limit_and_callback_error)
{
	struct k8s_linebuf lb = {.max = 16};
	struct lines l = {0};

	cr_assert_eq(k8s_linebuf_feed(&lb, "0123456789", 10, collect, &l), 0);
	cr_assert_eq(k8s_linebuf_feed(&lb, "0123456789\n", 11, collect, &l), -E2BIG);
	cr_assert_eq(k8s_linebuf_pending(&lb), 0);
	/* A line within the limit still goes through afterwards. */
	cr_assert_eq(k8s_linebuf_feed(&lb, "short\n", 6, collect, &l), 0);
	cr_assert_eq(l.n, 1);
	k8s_linebuf_free(&lb);

	struct lines f = {.fail_at = 2};
	cr_assert_eq(k8s_linebuf_feed(&lb, "a\nb\nc\n", 6, collect, &f), -EIO);
	cr_assert_eq(f.n, 2); /* stopped at the failing line */
	k8s_linebuf_free(&lb);
}

static int parse(const char *line, struct k8s_event *ev, char *why)
{
	return k8s_watch_parse(line, strlen(line), ev, why, 96);
}

Test(watch, events)
{
	struct k8s_event ev;
	char why[96];

	cr_assert_eq(parse("{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"x\","
			   "\"resourceVersion\":\"17\"}}}",
			   &ev, why),
		     0);
	cr_assert_eq(ev.type, K8S_EV_ADDED);
	cr_assert_str_eq(ev.rv, "17");
	cJSON_Delete(ev.object);

	cr_assert_eq(parse("{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Ingress\",\"metadata\":"
			   "{\"resourceVersion\":\"99\"}}}",
			   &ev, why),
		     0);
	cr_assert_eq(ev.type, K8S_EV_BOOKMARK);
	cr_assert_str_eq(ev.rv, "99");
	cJSON_Delete(ev.object);

	cr_assert_eq(parse("{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
			   "\"reason\":\"Expired\"}}",
			   &ev, why),
		     0);
	cr_assert_eq(ev.type, K8S_EV_ERROR);
	cr_assert_eq(ev.code, 410);
	cr_assert_null(ev.rv);
	cJSON_Delete(ev.object);

	/* Edge cases: never a crash, always a reason. */
	const char *bad[] = {"{not json",
			     "[1,2]",
			     "\"ADDED\"",
			     "null",
			     "{}",
			     "{\"type\":7,\"object\":{}}",
			     "{\"type\":\"ADDED\"}",
			     "{\"type\":\"ADDED\",\"object\":null}",
			     "{\"type\":\"ADDED\",\"object\":[1]}",
			     "{\"type\":\"SOMETHING\",\"object\":{}}",
			     "{\"type\":\"ADDED\",\"object\":{}} trailing",
			     "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"\\ud800\"}"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		cr_assert_eq(parse(bad[i], &ev, why), -EINVAL, "accepted: %s", bad[i]);
		cr_assert_neq(why[0], '\0', "no reason for %s", bad[i]);
		cr_assert_null(ev.object);
	}
	/* A length that stops inside the text: only len bytes are read. */
	const char *l = "{\"type\":\"ADDED\",\"object\":{}}GARBAGE";
	cr_assert_eq(k8s_watch_parse(l, 28, &ev, why, sizeof(why)), 0);
	cJSON_Delete(ev.object);
}

Test(watch, object_checks_and_trim)
{
	char id[64];
	cJSON *o = cJSON_Parse("{\"metadata\":{\"name\":\"web\",\"namespace\":\"demo\","
			       "\"resourceVersion\":\"5\",\"managedFields\":[{\"manager\":\"x\"}],"
			       "\"annotations\":{\"kubectl.kubernetes.io/last-applied-"
			       "configuration\":\"{}\",\"keep\":\"me\"}},\"kind\":\"Wrong\"}");

	cr_assert_null(k8s_object_check(o, true));
	cr_assert_str_eq(k8s_object_id(o, id, sizeof(id)), "demo/web");
	cr_assert_str_eq(k8s_object_rv(o), "5");
	cr_assert_eq(k8s_object_trim(o, "Ingress", "networking.k8s.io/v1"), 0);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "kind")->valuestring, "Ingress");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "apiVersion")->valuestring, "networking.k8s.io/v1");
	cJSON *meta = cJSON_GetObjectItem(o, "metadata");
	cr_assert_null(cJSON_GetObjectItem(meta, "managedFields"));
	cJSON *ann = cJSON_GetObjectItem(meta, "annotations");
	cr_assert_null(cJSON_GetObjectItem(ann, "kubectl.kubernetes.io/last-applied-configuration"));
	cr_assert_not_null(cJSON_GetObjectItem(ann, "keep"));
	cJSON_Delete(o);

	struct {
		const char *json;
		bool namespaced;
		bool ok;
	} cases[] = {
		{"{\"metadata\":{\"name\":\"x\"}}", false, true},
		{"{\"metadata\":{\"name\":\"x\"}}", true, false},
		{"{\"metadata\":{\"name\":\"x\",\"namespace\":7}}", true, false},
		{"{\"metadata\":{\"name\":\"\"}}", false, false},
		{"{\"metadata\":{\"name\":3}}", false, false},
		{"{\"metadata\":[]}", false, false},
		{"{}", false, false},
		{"[]", false, false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *j = cJSON_Parse(cases[i].json);
		const char *why = k8s_object_check(j, cases[i].namespaced);
		cr_assert_eq(why == NULL, cases[i].ok, "%s: %s", cases[i].json, why ? why : "ok");
		k8s_object_id(j, id, sizeof(id)); /* never crashes */
		cJSON_Delete(j);
	}
	cr_assert_not_null(k8s_object_check(NULL, false));
	cr_assert_str_eq(k8s_object_id(NULL, id, sizeof(id)), "?");
}
