#!/usr/bin/env bash
# The storage-interface suite as a test binary (run by test/kube/storage-suite.test.ts with
# HARIKUBE_STORAGE_SUITE_ENDPOINT set). -trimpath as for kube-apiserver, so both share the build cache.
set -euo pipefail
go test -c -trimpath -o "$OUT/storage-suite.test" .
