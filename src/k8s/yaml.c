/* yaml.c - libyaml events to cJSON trees, one per document. */
#include "k8s/yaml.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YAML_MAX_DEPTH 256
#define YAML_MAX_NODES (1u << 20) /* bounds alias expansion ("billion laughs") */

#define TAG_PREFIX "tag:yaml.org,2002:"

struct frame {
	cJSON *node; /* object or array being filled */
	char *key;   /* pending key of a mapping, owned */
	char *anchor; /* anchor to register when the node ends, owned */
};

struct anchor {
	char *name;
	const cJSON *node; /* points into the current document or owned below */
	cJSON *owned;      /* anchored mapping keys live here */
};

struct parse {
	yaml_parser_t parser;
	struct k8s_yaml_error *err;
	struct frame stack[YAML_MAX_DEPTH];
	unsigned depth;
	cJSON *root; /* document being built */
	struct anchor *anchors;
	size_t nanchors, anchors_cap;
	size_t nodes; /* created so far in the stream */
	struct k8s_yaml_doc *docs;
	size_t ndocs, docs_cap;
	unsigned doc_line;
};

static int fail(struct parse *p, const yaml_mark_t *m, const char *fmt, const char *arg)
{
	p->err->line = (unsigned)m->line + 1;
	p->err->column = (unsigned)m->column + 1;
	snprintf(p->err->msg, sizeof(p->err->msg), fmt, arg ? arg : "");
	return -EINVAL;
}

static bool is_digits(const char *s, int (*ok)(int))
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!ok((unsigned char)*s))
			return false;
	return true;
}

static int isodigit_(int c)
{
	return c >= '0' && c <= '7';
}

static bool looks_float(const char *s)
{
	bool digits = false;

	if (*s == '+' || *s == '-')
		s++;
	while (isdigit((unsigned char)*s)) {
		s++;
		digits = true;
	}
	if (*s == '.') {
		s++;
		while (isdigit((unsigned char)*s)) {
			s++;
			digits = true;
		}
	}
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!is_digits(s, isdigit))
			return false;
		return true;
	}
	return *s == '\0';
}

/* Resolves a plain scalar (or one tagged !!null/!!bool/!!int/!!float) to a
 * typed value: true with *out set (NULL when out of memory), or false to
 * keep it a string. */
static bool resolve_plain(const char *v, cJSON **out)
{
	const char *d = v;

	if (!*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	    !strcmp(v, "NULL")) {
		*out = cJSON_CreateNull();
		return true;
	}
	if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE")) {
		*out = cJSON_CreateTrue();
		return true;
	}
	if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE")) {
		*out = cJSON_CreateFalse();
		return true;
	}
	if (*d == '+' || *d == '-')
		d++;
	if (d[0] == '0' && (d[1] == 'x' || d[1] == 'o') && d[2]) {
		bool hex = d[1] == 'x';
		if (!is_digits(d + 2, hex ? isxdigit : isodigit_))
			return false;
		double n = (double)strtoull(d + 2, NULL, hex ? 16 : 8);
		*out = cJSON_CreateNumber(*v == '-' ? -n : n);
		return true;
	}
	if (looks_float(v)) {
		*out = cJSON_CreateNumber(strtod(v, NULL));
		return true;
	}
	return false;
}

/* The scalar's value, or NULL when out of memory. */
static cJSON *scalar_value(const yaml_event_t *ev)
{
	const char *v = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	bool resolve;

	if (tag && !strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX))) {
		const char *t = tag + strlen(TAG_PREFIX);
		resolve = !strcmp(t, "null") || !strcmp(t, "bool") || !strcmp(t, "int") ||
			  !strcmp(t, "float");
	} else {
		resolve = !tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	}
	cJSON *j;
	if (resolve && resolve_plain(v, &j))
		return j;
	return cJSON_CreateString(v);
}

static size_t count_nodes(const cJSON *j)
{
	size_t n = 1;

	for (const cJSON *c = j->child; c; c = c->next)
		n += count_nodes(c);
	return n;
}

static const cJSON *find_anchor(struct parse *p, const char *name)
{
	/* Latest definition wins: YAML allows redefining an anchor. */
	for (size_t i = p->nanchors; i-- > 0;)
		if (!strcmp(p->anchors[i].name, name))
			return p->anchors[i].node;
	return NULL;
}

static int add_anchor(struct parse *p, char *name, const cJSON *node, cJSON *owned)
{
	if (p->nanchors == p->anchors_cap) {
		size_t cap = p->anchors_cap ? 2 * p->anchors_cap : 8;
		struct anchor *a = realloc(p->anchors, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		p->anchors = a;
		p->anchors_cap = cap;
	}
	p->anchors[p->nanchors++] = (struct anchor){name, node, owned};
	return 0;
}

static void clear_anchors(struct parse *p)
{
	for (size_t i = 0; i < p->nanchors; i++) {
		free(p->anchors[i].name);
		cJSON_Delete(p->anchors[i].owned);
	}
	p->nanchors = 0;
}

/* Attaches a finished value to the node on top of the stack (or makes it the
 * document root). Takes ownership of v in every case. */
static int attach(struct parse *p, cJSON *v, const yaml_mark_t *m)
{
	if (p->depth == 0) {
		p->root = v;
		return 0;
	}
	struct frame *f = &p->stack[p->depth - 1];
	if (cJSON_IsArray(f->node)) {
		if (!cJSON_AddItemToArray(f->node, v)) {
			cJSON_Delete(v);
			return -ENOMEM;
		}
		return 0;
	}
	if (!f->key) {
		cJSON_Delete(v);
		return fail(p, m, "mapping keys must be scalars%s", NULL);
	}
	if (cJSON_GetObjectItemCaseSensitive(f->node, f->key)) {
		cJSON_Delete(v);
		return fail(p, m, "duplicate mapping key \"%s\"", f->key);
	}
	/* cJSON copies the key: out of memory, the value would be dropped
	 * without a word, and an object would load without a field. */
	if (!cJSON_AddItemToObject(f->node, f->key, v)) {
		cJSON_Delete(v);
		return -ENOMEM;
	}
	free(f->key);
	f->key = NULL;
	return 0;
}

/* True when the next node of the top frame is a mapping key. */
static bool want_key(const struct parse *p)
{
	return p->depth > 0 && cJSON_IsObject(p->stack[p->depth - 1].node) &&
	       !p->stack[p->depth - 1].key;
}

static int on_key(struct parse *p, const char *key, const char *anchor)
{
	struct frame *f = &p->stack[p->depth - 1];
	f->key = strdup(key);
	if (!f->key)
		return -ENOMEM;
	if (anchor) {
		char *name = strdup(anchor);
		cJSON *s = cJSON_CreateString(key);
		if (!name || !s || add_anchor(p, name, s, s) < 0) {
			free(name);
			cJSON_Delete(s);
			return -ENOMEM;
		}
	}
	return 0;
}

static int on_scalar(struct parse *p, const yaml_event_t *ev)
{
	const char *anchor = (const char *)ev->data.scalar.anchor;

	if (want_key(p))
		return on_key(p, (const char *)ev->data.scalar.value, anchor);
	if (++p->nodes > YAML_MAX_NODES)
		return fail(p, &ev->start_mark, "too many nodes%s", NULL);
	cJSON *v = scalar_value(ev);
	if (!v)
		return -ENOMEM;
	if (anchor) {
		char *name = strdup(anchor);
		if (!name || add_anchor(p, name, v, NULL) < 0) {
			free(name);
			cJSON_Delete(v);
			return -ENOMEM;
		}
	}
	return attach(p, v, &ev->start_mark);
}

static int on_alias(struct parse *p, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	const cJSON *a = find_anchor(p, name);

	if (!a)
		return fail(p, &ev->start_mark, "unknown anchor \"%s\"", name);
	if (want_key(p)) {
		if (!cJSON_IsString(a))
			return fail(p, &ev->start_mark, "alias *%s used as a key is not a string",
				    name);
		return on_key(p, a->valuestring, NULL);
	}
	size_t n = count_nodes(a);
	if (n > YAML_MAX_NODES - p->nodes)
		return fail(p, &ev->start_mark, "too many nodes (expanding alias *%s)", name);
	p->nodes += n;
	cJSON *v = cJSON_Duplicate(a, 1);
	if (!v)
		return -ENOMEM;
	return attach(p, v, &ev->start_mark);
}

static int on_start(struct parse *p, const yaml_event_t *ev, bool mapping)
{
	const char *anchor = mapping ? (const char *)ev->data.mapping_start.anchor
				     : (const char *)ev->data.sequence_start.anchor;

	if (want_key(p))
		return fail(p, &ev->start_mark, "complex mapping keys are not supported%s", NULL);
	if (p->depth == YAML_MAX_DEPTH)
		return fail(p, &ev->start_mark, "nesting deeper than 256 levels%s", NULL);
	if (++p->nodes > YAML_MAX_NODES)
		return fail(p, &ev->start_mark, "too many nodes%s", NULL);
	struct frame *f = &p->stack[p->depth];
	*f = (struct frame){0};
	f->node = mapping ? cJSON_CreateObject() : cJSON_CreateArray();
	if (anchor)
		f->anchor = strdup(anchor);
	if (!f->node || (anchor && !f->anchor)) {
		cJSON_Delete(f->node);
		free(f->anchor);
		return -ENOMEM;
	}
	p->depth++;
	return 0;
}

static int on_end(struct parse *p, const yaml_event_t *ev)
{
	struct frame *f = &p->stack[--p->depth];
	cJSON *node = f->node;
	int ret;

	free(f->key); /* NULL unless a key without value, which libyaml forbids */
	if (f->anchor) {
		/* Registered once complete: a node cannot contain an alias of itself. */
		if (add_anchor(p, f->anchor, node, NULL) < 0) {
			free(f->anchor);
			cJSON_Delete(node);
			return -ENOMEM;
		}
	}
	*f = (struct frame){0};
	ret = attach(p, node, &ev->start_mark);
	return ret;
}

static int on_document_end(struct parse *p)
{
	if (p->ndocs == p->docs_cap) {
		size_t cap = p->docs_cap ? 2 * p->docs_cap : 4;
		struct k8s_yaml_doc *d = realloc(p->docs, cap * sizeof(*d));
		if (!d)
			return -ENOMEM;
		p->docs = d;
		p->docs_cap = cap;
	}
	if (!p->root && !(p->root = cJSON_CreateNull()))
		return -ENOMEM;
	p->docs[p->ndocs++] = (struct k8s_yaml_doc){p->root, p->doc_line};
	p->root = NULL;
	clear_anchors(p);
	return 0;
}

static void parse_cleanup(struct parse *p)
{
	while (p->depth > 0) {
		struct frame *f = &p->stack[--p->depth];
		cJSON_Delete(f->node);
		free(f->key);
		free(f->anchor);
	}
	cJSON_Delete(p->root);
	clear_anchors(p);
	free(p->anchors);
	yaml_parser_delete(&p->parser);
}

static int parser_error(struct parse *p)
{
	yaml_parser_t *y = &p->parser;

	if (y->error == YAML_MEMORY_ERROR)
		return -ENOMEM;
	p->err->line = (unsigned)y->problem_mark.line + 1;
	p->err->column = (unsigned)y->problem_mark.column + 1;
	if (y->context)
		snprintf(p->err->msg, sizeof(p->err->msg), "%s %s",
			 y->problem ? y->problem : "syntax error", y->context);
	else
		snprintf(p->err->msg, sizeof(p->err->msg), "%s",
			 y->problem ? y->problem : "syntax error");
	return -EINVAL;
}

int k8s_yaml_parse(const char *buf, size_t len, struct k8s_yaml_doc **docs, size_t *ndocs,
		   struct k8s_yaml_error *err)
{
	struct parse *p = calloc(1, sizeof(*p));
	struct k8s_yaml_error scratch;
	int ret = 0;
	bool done = false;

	*docs = NULL;
	*ndocs = 0;
	if (!p)
		return -ENOMEM;
	p->err = err ? err : &scratch;
	if (!yaml_parser_initialize(&p->parser)) {
		free(p);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&p->parser, (const unsigned char *)buf, len);

	while (!done && ret == 0) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&p->parser, &ev)) {
			ret = parser_error(p);
			break;
		}
		switch (ev.type) {
		case YAML_DOCUMENT_START_EVENT:
			p->doc_line = (unsigned)ev.end_mark.line + 1;
			break;
		case YAML_DOCUMENT_END_EVENT:
			ret = on_document_end(p);
			break;
		case YAML_SCALAR_EVENT:
			if (p->depth == 0)
				p->doc_line = (unsigned)ev.start_mark.line + 1;
			ret = on_scalar(p, &ev);
			break;
		case YAML_ALIAS_EVENT:
			ret = on_alias(p, &ev);
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (p->depth == 0)
				p->doc_line = (unsigned)ev.start_mark.line + 1;
			ret = on_start(p, &ev, ev.type == YAML_MAPPING_START_EVENT);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			ret = on_end(p, &ev);
			break;
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}

	if (ret == 0) {
		*docs = p->docs;
		*ndocs = p->ndocs;
	} else {
		k8s_yaml_docs_free(p->docs, p->ndocs);
	}
	parse_cleanup(p);
	free(p);
	return ret;
}

void k8s_yaml_docs_free(struct k8s_yaml_doc *docs, size_t n)
{
	for (size_t i = 0; docs && i < n; i++)
		cJSON_Delete(docs[i].root);
	free(docs);
}
