/* annotations.h - nginx.ingress.kubernetes.io annotations that ringress
 * understands, turned into per-backend options. */
#ifndef RINGRESS_K8S_ANNOTATIONS_H
#define RINGRESS_K8S_ANNOTATIONS_H

#include "core/snapshot-t.h"

#include <cJSON.h>
#include <stddef.h>

#define K8S_ANN_PREFIX "nginx.ingress.kubernetes.io/"

/* Reads the annotations of an Ingress (its metadata.annotations object,
 * NULL accepted) into o: load-balance, upstream-hash-by,
 * proxy-connect-timeout, proxy-read-timeout, proxy-send-timeout. An invalid
 * value is logged with the Ingress's ns/name and ignored. Returns the number
 * of annotations applied. */
int k8s_annotations_backend_opts(const cJSON *annotations, const char *ns, const char *name,
				 struct snap_backend_opts *o);

/* Writes a suffix that tells backends with different options apart
 * ("" for the defaults), e.g. "|lb=4|hash=1:x-user|rt=5000". */
void k8s_annotations_suffix(const struct snap_backend_opts *o, char *buf, size_t cap);

#endif
