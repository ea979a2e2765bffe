#!/usr/bin/env bash
# The bench's load generator (our source here, on go.mod's pinned go.etcd.io/etcd/client/v3): $OUT/loadgen.
set -euo pipefail
CGO_ENABLED=0 go build -trimpath -o "$OUT/loadgen" .
"$OUT/loadgen" --help >/dev/null 2>&1
