// Command sandbox-agent is the sandbox's helper next to the real kube-apiserver
// and etcd: it generates the cluster's PKI, runs a fake kubelet (real kubelet
// streaming code over a fake container runtime), and runs the few real
// kube-controller-manager controllers the sandbox needs. A build tool of the
// project, not product code.
//
//	sandbox-agent pki --dir DIR --node-name NAME
//	sandbox-agent kubelet --kubeconfig F --node-name NAME --port P --tls-cert F --tls-key F --client-ca F
//	sandbox-agent controllers --kubeconfig F --root-ca F
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sandbox-agent pki|kubelet|controllers [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "pki":
		err = runPKI(os.Args[2:])
	case "kubelet":
		err = runKubelet(os.Args[2:])
	case "controllers":
		err = runControllers(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q (want pki, kubelet or controllers)", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-agent:", err)
		os.Exit(1)
	}
}
