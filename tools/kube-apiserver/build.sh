#!/usr/bin/env bash
# kube-apiserver and kubectl at the pin in go.mod (run by tools/build.sh with $OUT set). The version stamp is
# what `kubectl version` and the server's /version report (an unstamped build says v0.0.0-master).
set -euo pipefail
v="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$(echo "$v" | cut -d. -f2) -X $pkg.gitTreeState=clean"
go build -trimpath -ldflags="$ldflags" -o "$OUT/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
