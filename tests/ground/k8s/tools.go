//go:build tools

// Package tools pins the control-plane commands built by build.sh: etcd (the
// go.etcd.io/etcd/server/v3 main package, same version kube-apiserver is
// tested with) and kube-apiserver, kube-controller-manager, kube-scheduler,
// kubectl.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
