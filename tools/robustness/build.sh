#!/usr/bin/env bash
# The robustness checker (our source here, on go.mod's pinned etcd client and porcupine): $OUT/robustness.
# The build checks that its checks catch the broken histories of its self-test.
set -euo pipefail
CGO_ENABLED=0 go build -trimpath -o "$OUT/robustness" .
"$OUT/robustness" --self-test | grep -q '^{"ok":true'
