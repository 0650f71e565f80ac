#!/usr/bin/env bash
# The kind end-to-end test in one command: builds the image, creates a 3-node kind cluster,
# helm-installs the chart, fails a VIP over by stopping a node, and deletes the cluster.
# Here a missing docker engine or kind is an error, not a skip (KUBEVRRP_E2E=1).
# KUBEVRRP_E2E_KEEP=1 keeps the cluster afterwards (delete it: kind delete cluster --name kube-vrrp-e2e).
set -euo pipefail
cd "$(dirname "$0")/../.."
export KUBEVRRP_E2E=1
exec python3 -m pytest tests/e2e -m e2e -rs -p no:cacheprovider "$@"
