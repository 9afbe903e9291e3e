//go:build tools

// Package tools pins the development tools the tests run (helm), so that
// the product's go.mod stays lean.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
