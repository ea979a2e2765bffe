//go:build tools

// Keeps the CLI's packages in go.mod/go.sum (`go mod tidy` would otherwise drop them).
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
