#!/usr/bin/env bash
# Builds the Pulumi CLI into $OUT (see tools/build.sh). The Node.js language host is not built: its module
# (github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3) is not served by the module proxy we
# use, so the tests run programs through the Automation API, whose in-process language host the CLI joins
# with --client (test/pulumi/README.md).
set -euo pipefail
version="$(go list -m -f '{{.Version}}' github.com/pulumi/pulumi/pkg/v3)"
go build -trimpath -o "$OUT/pulumi" \
  -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
  github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
"$OUT/pulumi" version
