#!/usr/bin/env bash
# k8s_scale.sh - control plane at scale: ringress against the test API server
# (tests/support/kube-apiserver.py) with 10,000 Ingresses, 10,000 Services and
# 50,000 endpoints. Prints start-to-ready time, snapshot build times, resident
# memory and the EndpointSlice-change-to-every-shard latency (p50/p99).
#
#   zig build && bench/k8s_scale.sh [--ingresses N] [--endpoints E] [--changes R] [--shards S]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export RINGRESS_ROOT=${RINGRESS_ROOT:-$(dirname "$here")}
export RINGRESS_BIN=${RINGRESS_BIN:-$RINGRESS_ROOT/zig-out/bin/ringress}
export RINGRESS_ECHO=${RINGRESS_ECHO:-$RINGRESS_ROOT/zig-out/bin/ringress-echo}
exec python3 "$here/k8s_scale.py" "$@"
