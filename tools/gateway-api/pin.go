// Package gatewayapi only pins sigs.k8s.io/gateway-api so that its CRD YAML is in the module cache.
package gatewayapi

import _ "sigs.k8s.io/gateway-api/apis/v1"
