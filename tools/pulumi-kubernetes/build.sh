#!/usr/bin/env bash
# Builds the Kubernetes resource provider into $OUT (see tools/build.sh); the tests put $OUT on PATH, where the
# engine takes it before any plugin cache or download (an "ambient" plugin).
#
# The module proxy serves one build of github.com/pulumi/pulumi-kubernetes/provider/v4: the pseudo-version in
# go.mod (no tagged provider/v4.x.y exists as a Go module version). @pulumi/kubernetes 4.34.2 asks for plugin
# 4.34.2; the engine uses this ambient build for that request (test/pulumi/README.md).
#
# Upstream's Makefile first writes schema-embed.json and terraform-mapping-embed.json (go:embed'ed by main.go)
# from the module's schema.json with the version filled in. The module cache is read-only (and -overlay may not
# replace files in it), so upstream's main.go is built from a scratch copy of this module with those two files
# made beside it.
set -euo pipefail
module=github.com/pulumi/pulumi-kubernetes/provider/v4
# `go list -m -f {{.Dir}}` is empty until the module is in the module cache (a fresh machine)
go mod download "$module"
version="$(go list -m -f '{{.Version}}' "$module")"
src="$(go list -m -f '{{.Dir}}' "$module")/cmd/pulumi-resource-kubernetes"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp go.mod go.sum "$src/main.go" "$work/"
node -e '
  const fs = require("fs");
  const [src, work, version] = process.argv.slice(1);
  const schema = JSON.parse(fs.readFileSync(src + "/schema.json", "utf8"));
  schema.version = version;
  fs.writeFileSync(work + "/schema-embed.json", JSON.stringify(schema));
  fs.writeFileSync(work + "/terraform-mapping-embed.json",
    JSON.stringify(JSON.parse(fs.readFileSync(src + "/terraform-mapping.json", "utf8"))));
' "$src" "$work" "${version#v}"
(cd "$work" && go build -trimpath -o "$OUT/pulumi-resource-kubernetes" \
  -ldflags "-s -w -X $module/pkg/version.Version=${version#v}" .)
