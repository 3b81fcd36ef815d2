/* manifests_test.c - loading manifest files and directories. */
#include "k8s_test.h"

#include <criterion/redirect.h>
#include <errno.h>
#include <unistd.h>

TestSuite(manifests, .init = quiet_logs);

Test(manifests, directory_multi_doc_list_json_hidden_skipped)
{
	struct k8s_store *s = k8s_store_new();
	struct k8s_manifests_stats st;

	cr_assert_eq(k8s_manifests_load(fixture("manifests/app"), s, &st), 0);
	cr_assert_eq(st.files, 3, "files %u", st.files); /* not .hidden.yaml, README.txt */
	cr_assert_eq(st.objects, 7, "objects %u", st.objects);
	cr_assert_eq(st.ignored, 1); /* the ConfigMap */
	cr_assert_eq(st.skipped, 0);

	cr_assert_not_null(k8s_store_get(s, "IngressClass", "", "ringress"));
	cr_assert_not_null(k8s_store_get(s, "Service", "shop", "web"));
	cr_assert_not_null(k8s_store_get(s, "EndpointSlice", "shop", "web-abcde"));
	cr_assert_not_null(k8s_store_get(s, "Ingress", "shop", "web"));
	/* From the kind: List in JSON, without namespace: "default". */
	const struct k8s_object *o = k8s_store_get(s, "Service", "default", "api");
	cr_assert_not_null(o);
	cr_assert_not_null(strstr(o->source, "20-api.json"));
	cr_assert_not_null(k8s_store_get(s, "EndpointSlice", "default", "api-1"));
	cr_assert_not_null(k8s_store_get(s, "Ingress", "default", "api"));
	cr_assert_null(k8s_store_get(s, "ConfigMap", "default", "unrelated"));
	/* Line of the document in a multi-document file. */
	o = k8s_store_get(s, "EndpointSlice", "shop", "web-abcde");
	cr_assert_eq(o->line, 13, "line %u", o->line);
	k8s_store_free(s);
}

Test(manifests, single_file)
{
	struct k8s_store *s = k8s_store_new();
	struct k8s_manifests_stats st;

	cr_assert_eq(k8s_manifests_load(fixture("manifests/app/10-web.yaml"), s, &st), 0);
	cr_assert_eq(st.files, 1);
	cr_assert_eq(k8s_store_count(s), 3);
	k8s_store_free(s);
}

Test(manifests, broken_yaml_fails_whole_load)
{
	struct k8s_store *s = k8s_store_new();

	cr_assert_eq(k8s_manifests_load(fixture("manifests/broken.yaml"), s, NULL), -EINVAL);
	k8s_store_free(s);
}

Test(manifests, broken_json_fails)
{
	struct k8s_store *s = k8s_store_new();

	cr_assert_eq(k8s_manifests_load(fixture("manifests/broken.json"), s, NULL), -EINVAL);
	k8s_store_free(s);
}

Test(manifests, broken_yaml_log_names_file_and_line, .init = cr_redirect_stderr)
{
	struct k8s_store *s = k8s_store_new();
	char buf[4096] = "";

	log_threshold = LOG_ERROR;
	cr_assert_eq(k8s_manifests_load(fixture("manifests/broken.yaml"), s, NULL), -EINVAL);
	fflush(stderr);
	FILE *f = cr_get_redirected_stderr();
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	cr_assert_not_null(strstr(buf, "broken.yaml:13:"), "%s", buf);
	k8s_store_free(s);
}

Test(manifests, invalid_objects_skipped_rest_loaded)
{
	struct k8s_store *s = k8s_store_new();
	struct k8s_manifests_stats st;

	cr_assert_eq(k8s_manifests_load(fixture("manifests/invalid-objects.yaml"), s, &st), 0);
	cr_assert_eq(st.skipped, 4, "skipped %u", st.skipped);
	cr_assert_eq(st.objects, 1);
	cr_assert_not_null(k8s_store_get(s, "Service", "default", "good"));
	k8s_store_free(s);
}

Test(manifests, missing_path)
{
	struct k8s_store *s = k8s_store_new();

	cr_assert_eq(k8s_manifests_load(fixture("manifests/nope"), s, NULL), -ENOENT);
	k8s_store_free(s);
}

Test(manifests, broken_file_in_directory_fails_and_later_definition_wins)
{
	char dir[] = "/tmp/ringress-manifests-XXXXXX";
	char path[256];
	struct k8s_store *s = k8s_store_new();
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.yaml", dir);
	f = fopen(path, "w");
	fputs("apiVersion: v1\nkind: Service\nmetadata: {name: s, labels: {v: a}}\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/b.yml", dir);
	f = fopen(path, "w");
	fputs("apiVersion: v1\nkind: Service\nmetadata: {name: s, labels: {v: b}}\n", f);
	fclose(f);

	cr_assert_eq(k8s_manifests_load(dir, s, NULL), 0);
	const struct k8s_object *o = k8s_store_get(s, "Service", "default", "s");
	cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(o->obj,
									       "metadata"),
							    "labels"),
				       "v");
	cr_assert_str_eq(v->valuestring, "b");
	k8s_store_free(s);

	snprintf(path, sizeof(path), "%s/c.json", dir);
	f = fopen(path, "w");
	fputs("{\"kind\": ", f);
	fclose(f);
	s = k8s_store_new();
	cr_assert_eq(k8s_manifests_load(dir, s, NULL), -EINVAL);
	k8s_store_free(s);

	unlink(path);
	snprintf(path, sizeof(path), "%s/a.yaml", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/b.yml", dir);
	unlink(path);
	rmdir(dir);
}
