/* ingclass.h - which Ingresses belong to this controller (translation and
 * status share these rules): spec.ingressClassName, then the
 * kubernetes.io/ingress.class annotation, then a default IngressClass of
 * ours or --watch-ingress-without-class. */
#ifndef RINGRESS_K8S_INGCLASS_H
#define RINGRESS_K8S_INGCLASS_H

#include "k8s/store.h"
#include "k8s/translate.h"

#include <stdbool.h>

/* True when one of our IngressClasses (spec.controller equal to
 * --controller-class) is annotated as the cluster's default class. */
bool k8s_have_default_class(const struct k8s_store *s, const struct k8s_class_options *o);

/* True when ingress (an Ingress object) is ours. have_default is the
 * result of k8s_have_default_class for the same store. */
bool k8s_ingress_is_ours(const struct k8s_store *s, const struct k8s_class_options *o,
			 const cJSON *ingress, bool have_default);

#endif
