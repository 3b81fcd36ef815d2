/* yaml.h - a YAML stream (one or more documents) converted to cJSON trees.
 *
 * Only libyaml parses; this file maps its events to cJSON values:
 * mappings -> objects (string keys only), sequences -> arrays, scalars ->
 * strings, except plain (unquoted, untagged) scalars that look like null
 * ("", "~", "null", "Null", "NULL"), a boolean (true/True/TRUE,
 * false/False/FALSE) or a number (decimal, 0x hex, 0o octal, floats; not
 * .inf/.nan, which JSON cannot hold, nor YAML 1.1 yes/no/on/off),
 * and scalars with an explicit !!null, !!bool, !!int or !!float tag.
 * Anchors and aliases are supported (an alias is a deep copy); duplicate keys
 * and non-scalar keys are errors, like kubectl. */
#ifndef RINGRESS_K8S_YAML_H
#define RINGRESS_K8S_YAML_H

#include <cJSON.h>
#include <stddef.h>

/* One document of a stream. */
struct k8s_yaml_doc {
	cJSON *root;   /* owned; a cJSON null for an empty document */
	unsigned line; /* 1-based line where the document's content starts */
};

/* Where and why parsing failed. */
struct k8s_yaml_error {
	unsigned line;   /* 1-based */
	unsigned column; /* 1-based */
	char msg[256];   /* libyaml's problem text (and context), or ours */
};

/* Parses len bytes of buf (need not be NUL-terminated). On success stores a
 * malloc'ed array of *ndocs documents in *docs (NULL when the stream is
 * empty), owned by the caller (k8s_yaml_docs_free), and returns 0.
 * Returns -EINVAL with *err filled for a syntax error or an unsupported
 * construct, or -ENOMEM; nothing is returned to free in both cases. */
int k8s_yaml_parse(const char *buf, size_t len, struct k8s_yaml_doc **docs, size_t *ndocs,
		   struct k8s_yaml_error *err);

/* Frees n documents returned by k8s_yaml_parse. NULL is accepted. */
void k8s_yaml_docs_free(struct k8s_yaml_doc *docs, size_t n);

#endif
