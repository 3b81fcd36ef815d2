/* endpoints_test.c - EndpointSlice conditions: ready, serving, terminating. */
#include "k8s/endpoints.h"

#include <criterion/criterion.h>

static enum k8s_endpoint_use use(const char *json)
{
	cJSON *j = cJSON_Parse(json);
	enum k8s_endpoint_use u = k8s_endpoint_use(j);
	cJSON_Delete(j);
	return u;
}

Test(endpoints, conditions)
{
	/* Ready (explicit or absent) serves. */
	cr_assert_eq(use("{\"addresses\":[\"10.0.0.1\"]}"), K8S_EP_READY);
	cr_assert_eq(use("{\"conditions\":{}}"), K8S_EP_READY);
	cr_assert_eq(use("{\"conditions\":{\"ready\":true}}"), K8S_EP_READY);
	cr_assert_eq(use("{\"conditions\":{\"ready\":null}}"), K8S_EP_READY);
	cr_assert_eq(use("{\"conditions\":{\"ready\":true,\"serving\":true}}"), K8S_EP_READY);
	/* Not ready and not terminating: out (starting, failing probes). */
	cr_assert_eq(use("{\"conditions\":{\"ready\":false}}"), K8S_EP_SKIP);
	cr_assert_eq(use("{\"conditions\":{\"ready\":false,\"serving\":true}}"), K8S_EP_SKIP);
	/* Terminating and still serving: only as a fallback. */
	cr_assert_eq(use("{\"conditions\":{\"ready\":false,\"serving\":true,\"terminating\":true}}"),
		     K8S_EP_FALLBACK);
	/* Terminating and no longer serving: out. */
	cr_assert_eq(use("{\"conditions\":{\"ready\":false,\"serving\":false,\"terminating\":true}}"),
		     K8S_EP_SKIP);
	cr_assert_eq(use("{\"conditions\":{\"ready\":false,\"terminating\":true}}"), K8S_EP_SKIP);
	cr_assert_eq(use("{\"conditions\":{\"serving\":false,\"terminating\":true}}"), K8S_EP_SKIP);
	/* Hostile shapes. */
	cr_assert_eq(use("[]"), K8S_EP_SKIP);
	cr_assert_eq(use("\"x\""), K8S_EP_SKIP);
	cr_assert_eq(k8s_endpoint_use(NULL), K8S_EP_SKIP);
	cr_assert_eq(use("{\"conditions\":[]}"), K8S_EP_READY);
	cr_assert_eq(use("{\"conditions\":{\"ready\":\"false\"}}"), K8S_EP_READY);
}
