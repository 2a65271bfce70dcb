//go:build tools

// Package tools pins the helm command (helm.sh/helm/v3), so go.sum covers it: the tests
// check that the kubeconfig of a portcullis login session works with helm as it is.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
