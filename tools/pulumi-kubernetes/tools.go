//go:build tools

// Keeps the provider's packages in go.mod/go.sum (`go mod tidy` would otherwise drop them).
package tools

import _ "github.com/pulumi/pulumi-kubernetes/provider/v4/cmd/pulumi-resource-kubernetes"
