#!/usr/bin/env bash
# etcd 3.6 (the pin is go.mod's go.etcd.io/etcd/server/v3): $OUT/etcd. Pure Go, no cgo.
set -euo pipefail
CGO_ENABLED=0 go build -trimpath -o "$OUT/etcd" go.etcd.io/etcd/server/v3
"$OUT/etcd" --version
