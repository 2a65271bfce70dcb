package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubernetes/pkg/controller/certificates/rootcacertpublisher"
	"k8s.io/kubernetes/pkg/controller/clusterroleaggregation"
	namespacecontroller "k8s.io/kubernetes/pkg/controller/namespace"
	serviceaccountcontroller "k8s.io/kubernetes/pkg/controller/serviceaccount"
)

// runControllers runs the four kube-controller-manager controllers a sandbox
// needs, from their real packages, wired as in
// cmd/kube-controller-manager/app/core.go (startModifiedNamespaceController,
// startServiceAccountController), certificates.go (startRootCACertPublisher)
// and rbac.go (startClusterRoleAggregationController): namespace deletion
// (content cleanup and the kubernetes finalizer), the default ServiceAccount
// in every namespace, kube-root-ca.crt, and the rules of the aggregated
// ClusterRoles (admin, edit, view), which are empty without it.
// Building all of kube-controller-manager would pull in the kubelet, cadvisor
// and every volume plugin for no benefit here.
func runControllers(args []string) error {
	fs := flag.NewFlagSet("controllers", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "controller credentials")
	rootCA := fs.String("root-ca", "", "cluster CA published as kube-root-ca.crt")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeconfig == "" || *rootCA == "" {
		return errors.New("controllers: --kubeconfig and --root-ca are required")
	}
	ca, err := os.ReadFile(*rootCA)
	if err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	// Same rate boost as startNamespaceController: namespace cleanup is chatty.
	cfg.QPS, cfg.Burst = 100, 500
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)

	nsc := namespacecontroller.NewNamespaceController(ctx, client, meta,
		client.Discovery().ServerPreferredNamespacedResources,
		factory.Core().V1().Namespaces(), 5*time.Minute, v1.FinalizerKubernetes)
	sac, err := serviceaccountcontroller.NewServiceAccountsController(
		factory.Core().V1().ServiceAccounts(), factory.Core().V1().Namespaces(), client,
		serviceaccountcontroller.DefaultServiceAccountsControllerOptions())
	if err != nil {
		return fmt.Errorf("serviceaccount controller: %w", err)
	}
	pub, err := rootcacertpublisher.NewPublisher(factory.Core().V1().ConfigMaps(), factory.Core().V1().Namespaces(), client, ca)
	if err != nil {
		return fmt.Errorf("root CA publisher: %w", err)
	}
	agg := clusterroleaggregation.NewClusterRoleAggregation(factory.Rbac().V1().ClusterRoles(), client.RbacV1())
	factory.Start(ctx.Done())
	go agg.Run(ctx, 5)
	go nsc.Run(ctx, 5)
	go sac.Run(ctx, 1)
	go pub.Run(ctx, 1)
	fmt.Fprintln(os.Stderr, "sandbox controllers running: namespace, serviceaccount, root-ca-cert-publisher, clusterrole-aggregation")
	<-ctx.Done()
	return nil
}
