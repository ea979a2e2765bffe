#!/usr/bin/env bash
# kine (the pin is go.mod's github.com/k3s-io/kine): $OUT/kine. cgo is required: kine's SQLite driver
# (mattn/go-sqlite3) is compiled only with cgo, and a cgo-less kine refuses sqlite:// endpoints.
set -euo pipefail
command -v gcc >/dev/null 2>&1 || { echo "kine needs a C compiler for its SQLite driver (apt-get install gcc)" >&2; exit 1; }
CGO_ENABLED=1 go build -trimpath -o "$OUT/kine" github.com/k3s-io/kine
"$OUT/kine" --version
