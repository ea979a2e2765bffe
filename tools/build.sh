#!/usr/bin/env bash
# Builds the pinned Go test and benchmark tools (kube-apiserver, kubectl, Pulumi, kine, load generator, ...)
# through the Go module proxy into a cache outside the work tree, keyed by the pin, so a fresh clone (CI)
# reuses what an earlier run built and a changed pin builds anew.
#
#   tools/build.sh [TOOL...]      build (or reuse) the named tools, every tool under tools/ when none is named
#   tools/build.sh --print TOOL   print TOOL's bin directory if it is built, else nothing (exit 1); builds nothing
#
# A tool is a folder tools/TOOL/ with a go.mod (and go.sum) of ours that requires the upstream module, plus
# build.sh, which is run from that folder with $OUT set to the bin directory to fill. The cache key is a
# hash of every file in the folder and of `go version`: edit the pin and the tool is rebuilt.
# Cache: $HARIKUBE_TOOLS_CACHE, default ~/.cache/harikube/tools.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${HARIKUBE_TOOLS_CACHE:-$HOME/.cache/harikube/tools}"

key_of() {
  local dir="$here/$1"
  { (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum); go version 2>/dev/null || echo no-go; } \
    | sha256sum | cut -c1-16
}

if [ "${1:-}" = "--print" ]; then
  [ -n "${2:-}" ] && [ -d "$here/$2" ] || { echo "usage: tools/build.sh --print TOOL" >&2; exit 2; }
  command -v go >/dev/null 2>&1 || exit 1
  bin="$cache/$2-$(key_of "$2")/bin"
  [ -f "$bin/.complete" ] || exit 1
  echo "$bin"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "tools/build.sh: Go is not installed; install Go 1.26 to build the test tools" >&2
  exit 1
fi

tools=("$@")
if [ ${#tools[@]} -eq 0 ]; then
  for d in "$here"/*/; do [ -f "$d/build.sh" ] && tools+=("$(basename "$d")"); done
fi

for tool in "${tools[@]}"; do
  [ -f "$here/$tool/build.sh" ] || { echo "tools/build.sh: no tool '$tool' (no tools/$tool/build.sh)" >&2; exit 2; }
  dest="$cache/$tool-$(key_of "$tool")"
  if [ -f "$dest/bin/.complete" ]; then
    echo "tools: $tool up to date ($dest/bin)"
    continue
  fi
  echo "tools: building $tool into $dest/bin (first build can take many minutes)"
  start=$SECONDS
  rm -rf "$dest" && mkdir -p "$dest/bin"
  (cd "$here/$tool" && OUT="$dest/bin" GOFLAGS="${GOFLAGS:-} -mod=mod" bash ./build.sh)
  touch "$dest/bin/.complete"
  echo "tools: built $tool in $((SECONDS - start))s"
done
