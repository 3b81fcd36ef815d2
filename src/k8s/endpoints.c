/* endpoints.c - EndpointSlice conditions; see endpoints.h. */
#include "k8s/endpoints.h"

enum k8s_endpoint_use k8s_endpoint_use(const cJSON *ep)
{
	const cJSON *cond, *ready, *serving, *terminating;

	if (!cJSON_IsObject(ep))
		return K8S_EP_SKIP;
	cond = cJSON_GetObjectItemCaseSensitive(ep, "conditions");
	if (!cJSON_IsObject(cond))
		cond = NULL; /* no conditions: ready */
	ready = cond ? cJSON_GetObjectItemCaseSensitive(cond, "ready") : NULL;
	serving = cond ? cJSON_GetObjectItemCaseSensitive(cond, "serving") : NULL;
	terminating = cond ? cJSON_GetObjectItemCaseSensitive(cond, "terminating") : NULL;

	/* Only an explicit false means not ready (absent or null: ready). */
	if (!cJSON_IsFalse(ready))
		return cJSON_IsTrue(terminating) && cJSON_IsFalse(serving) ? K8S_EP_SKIP
									   : K8S_EP_READY;
	/* Not ready: kept for a drain only if still serving while terminating. */
	if (cJSON_IsTrue(terminating) && cJSON_IsTrue(serving))
		return K8S_EP_FALLBACK;
	return K8S_EP_SKIP;
}
