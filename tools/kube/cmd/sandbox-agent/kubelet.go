package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubelet/pkg/cri/streaming/portforward"
	criremotecommand "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// The fake kubelet: a Node with one loopback address whose pods "run" in a fake
// runtime. Streaming (exec, attach, port-forward) is served by the real kubelet
// streaming code (k8s.io/kubelet/pkg/cri/streaming), so the apiserver and
// kubectl speak their real protocols (SPDY/3.1 and WebSocket) to it. Only the
// runtime underneath is fake: a fixed command set, an echoing main process and
// a built-in TCP responder for every forwarded port.

const (
	streamIdleTimeout     = 10 * time.Minute
	streamCreationTimeout = 30 * time.Second
	// EchoPort is the forwarded port that echoes bytes back; every other
	// forwarded port answers one HTTP request.
	echoPort = 7
)

func runKubelet(args []string) error {
	fs := flag.NewFlagSet("kubelet", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "node credentials (system:node:NAME)")
	nodeName := fs.String("node-name", "", "node name")
	port := fs.Int("port", 0, "HTTPS port on 127.0.0.1")
	certFile := fs.String("tls-cert", "", "serving certificate")
	keyFile := fs.String("tls-key", "", "serving key")
	clientCA := fs.String("client-ca", "", "CA that signs the apiserver's kubelet client certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *kubeconfig == "" || *nodeName == "" || *port == 0 || *certFile == "" || *keyFile == "" || *clientCA == "" {
		return errors.New("kubelet: --kubeconfig, --node-name, --port, --tls-cert, --tls-key and --client-ca are required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	// Listen first so the apiserver never sees a node whose endpoint is closed.
	caPEM, err := os.ReadFile(*clientCA)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no certificate in %s", *clientCA)
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return err
	}
	k := &fakeKubelet{node: *nodeName, client: client}
	srv := &http.Server{
		Handler:           onlyAPIServer(k.routes()),
		ReadHeaderTimeout: 30 * time.Second,
		// Only the apiserver (a client certificate from the cluster CA) may call
		// the kubelet API, as with the real kubelet's x509 authentication. HTTP/1.1
		// only: SPDY and WebSocket upgrades need it.
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientCAs:    pool,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"},
		},
	}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
		_ = srv.Close()
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()

	if err := k.register(ctx, *port); err != nil {
		return fmt.Errorf("registering node %s: %w", *nodeName, err)
	}
	go k.syncPods(ctx)
	go k.heartbeat(ctx)
	fmt.Fprintf(os.Stderr, "fake kubelet %s serving on 127.0.0.1:%d\n", *nodeName, *port)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type fakeKubelet struct {
	node   string
	client kubernetes.Interface
}

// register creates (or refreshes) this Node, with InternalIP 127.0.0.1 and the
// kubelet port the apiserver dials for exec, attach, port-forward and logs.
func (k *fakeKubelet) register(ctx context.Context, port int) error {
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: k.node,
			Labels: map[string]string{
				"kubernetes.io/hostname": k.node,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
			},
		},
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := k.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := k.client.CoreV1().Nodes().Get(ctx, k.node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		cur.Status = v1.NodeStatus{
			Addresses: []v1.NodeAddress{
				{Type: v1.NodeInternalIP, Address: "127.0.0.1"},
				{Type: v1.NodeHostName, Address: k.node},
			},
			DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(port)}},
			Conditions: []v1.NodeCondition{{
				Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady",
				Message: "fake kubelet is ready", LastHeartbeatTime: now, LastTransitionTime: now,
			}},
			Capacity: v1.ResourceList{
				v1.ResourceCPU:    resource.MustParse("4"),
				v1.ResourceMemory: resource.MustParse("8Gi"),
				v1.ResourcePods:   resource.MustParse("110"),
			},
			Allocatable: v1.ResourceList{
				v1.ResourceCPU:    resource.MustParse("4"),
				v1.ResourceMemory: resource.MustParse("8Gi"),
				v1.ResourcePods:   resource.MustParse("110"),
			},
			NodeInfo: v1.NodeSystemInfo{
				KubeletVersion: "v1.34.4", OperatingSystem: "linux", Architecture: "amd64",
				ContainerRuntimeVersion: "portcullis-fake://1", OSImage: "portcullis sandbox",
			},
		}
		_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

// heartbeat keeps the Ready condition fresh (nothing here evicts on a stale
// one, but kubectl shows it).
func (k *fakeKubelet) heartbeat(ctx context.Context) {
	t := time.NewTicker(40 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur, err := k.client.CoreV1().Nodes().Get(ctx, k.node, metav1.GetOptions{})
				if err != nil {
					return err
				}
				for i := range cur.Status.Conditions {
					if cur.Status.Conditions[i].Type == v1.NodeReady {
						cur.Status.Conditions[i].LastHeartbeatTime = metav1.Now()
					}
				}
				_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
				return err
			})
		}
	}
}

// syncPods watches the pods bound to this node: a new pod is reported Running
// with every container started; a pod being deleted is confirmed deleted, as
// the real kubelet does once its containers have stopped. A periodic resync
// retries anything a transient error left behind.
func (k *fakeKubelet) syncPods(ctx context.Context) {
	factory := informers.NewSharedInformerFactoryWithOptions(k.client, 30*time.Second,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.node).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	var inflight sync.Map
	handle := func(obj interface{}) {
		pod, ok := obj.(*v1.Pod)
		if !ok || (pod.DeletionTimestamp == nil && pod.Status.Phase == v1.PodRunning) {
			return
		}
		if _, busy := inflight.LoadOrStore(pod.UID, true); busy {
			return
		}
		go func() {
			defer inflight.Delete(pod.UID)
			k.syncPod(ctx, pod.Namespace, pod.Name)
		}()
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    handle,
		UpdateFunc: func(_, obj interface{}) { handle(obj) },
	})
	factory.Start(ctx.Done())
	<-ctx.Done()
}

// syncPod retries for a while on any error: right after a pod is bound, the
// Node authorizer's graph may not yet know that this node may read it.
func (k *fakeKubelet) syncPod(ctx context.Context, ns, name string) {
	var err error
	delay := 100 * time.Millisecond
	for attempt := 0; attempt < 30; attempt++ {
		if err = k.syncPodOnce(ctx, ns, name); err == nil || apierrors.IsNotFound(err) || ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
	fmt.Fprintf(os.Stderr, "fake kubelet: syncing pod %s/%s: %v\n", ns, name, err)
}

func (k *fakeKubelet) syncPodOnce(ctx context.Context, ns, name string) error {
	pod, err := k.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if pod.DeletionTimestamp != nil {
		zero := int64(0)
		uid := pod.UID
		return k.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			GracePeriodSeconds: &zero,
			Preconditions:      &metav1.Preconditions{UID: &uid},
		})
	}
	if pod.Status.Phase == v1.PodRunning {
		return nil
	}
	now := metav1.Now()
	started := true
	statuses := make([]v1.ContainerStatus, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		statuses = append(statuses, v1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "portcullis-fake://" + c.Image,
			ContainerID: "portcullis-fake://" + string(pod.UID) + "/" + c.Name,
			Ready:       true, Started: &started,
			State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: now}},
		})
	}
	cond := func(t v1.PodConditionType) v1.PodCondition {
		return v1.PodCondition{Type: t, Status: v1.ConditionTrue, LastTransitionTime: now}
	}
	pod.Status = v1.PodStatus{
		Phase:             v1.PodRunning,
		HostIP:            "127.0.0.1",
		HostIPs:           []v1.HostIP{{IP: "127.0.0.1"}},
		StartTime:         &now,
		Conditions:        []v1.PodCondition{cond(v1.PodInitialized), cond(v1.PodReady), cond(v1.ContainersReady), cond(v1.PodScheduled)},
		ContainerStatuses: statuses,
		QOSClass:          pod.Status.QOSClass,
	}
	_, err = k.client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	return err
}

// apiserverKubeletClientCN is the common name of the apiserver's
// --kubelet-client-certificate (see pki.go).
const apiserverKubeletClientCN = "kube-apiserver-kubelet-client"

// onlyAPIServer admits only the apiserver's kubelet client identity, so every
// exec, attach, port-forward and log read has to go through the apiserver and
// its authorization (the real kubelet asks the apiserver with a
// SubjectAccessReview instead; here nothing else needs to call it).
func onlyAPIServer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/healthz" {
			next.ServeHTTP(w, req)
			return
		}
		if req.TLS == nil || len(req.TLS.PeerCertificates) == 0 || req.TLS.PeerCertificates[0].Subject.CommonName != apiserverKubeletClientCN {
			http.Error(w, "Forbidden: only the kube-apiserver may call this kubelet", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// routes mirrors the kubelet API paths the apiserver calls
// (pkg/kubelet/server/server.go: /exec, /attach, /portForward, /containerLogs).
func (k *fakeKubelet) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", k.serveExec)
	mux.HandleFunc("/exec/{ns}/{pod}/{uid}/{container}", k.serveExec)
	mux.HandleFunc("/attach/{ns}/{pod}/{container}", k.serveAttach)
	mux.HandleFunc("/attach/{ns}/{pod}/{uid}/{container}", k.serveAttach)
	mux.HandleFunc("/portForward/{ns}/{pod}", k.servePortForward)
	mux.HandleFunc("/portForward/{ns}/{pod}/{uid}", k.servePortForward)
	mux.HandleFunc("/containerLogs/{ns}/{pod}/{container}", k.serveLogs)
	return mux
}

// pod checks that the pod exists and is bound to this node.
func (k *fakeKubelet) pod(w http.ResponseWriter, req *http.Request) (*v1.Pod, bool) {
	ns, name := req.PathValue("ns"), req.PathValue("pod")
	pod, err := k.client.CoreV1().Pods(ns).Get(req.Context(), name, metav1.GetOptions{})
	if err != nil || pod.Spec.NodeName != k.node {
		http.Error(w, fmt.Sprintf("pod %s/%s not found on node %s", ns, name, k.node), http.StatusNotFound)
		return nil, false
	}
	if uid := req.PathValue("uid"); uid != "" && uid != string(pod.UID) {
		http.Error(w, "pod uid mismatch", http.StatusNotFound)
		return nil, false
	}
	return pod, true
}

func hasContainer(pod *v1.Pod, name string) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	return false
}

// streamTarget resolves the pod, container and stream options of an exec or
// attach request, answering the error itself when one is missing.
func (k *fakeKubelet) streamTarget(w http.ResponseWriter, req *http.Request) (*v1.Pod, string, *criremotecommand.Options, bool) {
	pod, ok := k.pod(w, req)
	if !ok {
		return nil, "", nil, false
	}
	container := req.PathValue("container")
	if !hasContainer(pod, container) {
		http.Error(w, "container not found", http.StatusNotFound)
		return nil, "", nil, false
	}
	opts, err := criremotecommand.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, "", nil, false
	}
	return pod, container, opts, true
}

func (k *fakeKubelet) serveExec(w http.ResponseWriter, req *http.Request) {
	pod, container, opts, ok := k.streamTarget(w, req)
	if !ok {
		return
	}
	cmd := req.URL.Query()["command"]
	criremotecommand.ServeExec(w, req, fakeRuntime{}, pod.Namespace+"/"+pod.Name, pod.UID, container, cmd, opts,
		streamIdleTimeout, streamCreationTimeout, remotecommandconsts.SupportedStreamingProtocols)
}

func (k *fakeKubelet) serveAttach(w http.ResponseWriter, req *http.Request) {
	pod, container, opts, ok := k.streamTarget(w, req)
	if !ok {
		return
	}
	criremotecommand.ServeAttach(w, req, fakeRuntime{}, pod.Namespace+"/"+pod.Name, pod.UID, container, opts,
		streamIdleTimeout, streamCreationTimeout, remotecommandconsts.SupportedStreamingProtocols)
}

func (k *fakeKubelet) servePortForward(w http.ResponseWriter, req *http.Request) {
	pod, ok := k.pod(w, req)
	if !ok {
		return
	}
	opts, err := portforward.NewV4Options(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, req, fakeRuntime{}, pod.Namespace+"/"+pod.Name, pod.UID, opts,
		streamIdleTimeout, streamCreationTimeout, portforward.SupportedProtocols)
}

// serveLogs writes a fixed log for the container; with follow=true it keeps
// writing one line a second until the client goes away.
func (k *fakeKubelet) serveLogs(w http.ResponseWriter, req *http.Request) {
	pod, ok := k.pod(w, req)
	if !ok {
		return
	}
	container := req.PathValue("container")
	if !hasContainer(pod, container) {
		http.Error(w, "container not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	id := pod.Namespace + "/" + pod.Name + "/" + container
	lines := []string{
		"sandbox container " + id + " started",
		"image " + imageOf(pod, container),
		"serving on every port (port 7 echoes)",
	}
	if n, err := strconv.Atoi(req.URL.Query().Get("tailLines")); err == nil && n >= 0 && n < len(lines) {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		_, _ = io.WriteString(w, l+"\n")
	}
	if req.URL.Query().Get("follow") != "true" {
		return
	}
	flusher, _ := w.(http.Flusher)
	for i := 1; i <= 3600; i++ {
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-req.Context().Done():
			return
		case <-time.After(time.Second):
		}
		if _, err := fmt.Fprintf(w, "tick %d\n", i); err != nil {
			return
		}
	}
}

func imageOf(pod *v1.Pod, container string) string {
	for _, c := range pod.Spec.Containers {
		if c.Name == container {
			return c.Image
		}
	}
	return ""
}

// fakeRuntime implements the streaming server's Executor, Attacher and
// PortForwarder with a fixed command set instead of containers.
type fakeRuntime struct{}

// ExecInContainer runs one of: echo ARGS…, echo-err ARGS… (to stderr), cat
// (stdin to stdout), hostname (the pod name), env, sleep SECONDS, false,
// exit CODE. Anything else fails with exit code 127, as a shell would.
func (fakeRuntime) ExecInContainer(ctx context.Context, name string, _ types.UID, container string, cmd []string,
	in io.Reader, out, errw io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize, _ time.Duration) error {
	if len(cmd) == 0 {
		return utilexec.CodeExitError{Err: errors.New("no command"), Code: 127}
	}
	write := func(w io.Writer, s string) {
		if w != nil {
			_, _ = io.WriteString(w, s)
		}
	}
	switch cmd[0] {
	case "echo":
		write(out, strings.Join(cmd[1:], " ")+"\n")
	case "echo-err":
		write(errw, strings.Join(cmd[1:], " ")+"\n")
	case "cat":
		if in != nil && out != nil {
			_, _ = io.Copy(out, in)
		}
	case "hostname":
		pod := name[strings.LastIndex(name, "/")+1:]
		write(out, pod+"\n")
	case "env":
		write(out, "HOSTNAME="+name[strings.LastIndex(name, "/")+1:]+"\nCONTAINER="+container+"\n")
	case "sleep":
		secs, err := strconv.ParseFloat(strings.Join(cmd[1:], ""), 64)
		if err != nil || secs < 0 || secs > 3600 {
			write(errw, "sleep: invalid time interval\n")
			return utilexec.CodeExitError{Err: errors.New("bad interval"), Code: 1}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(secs * float64(time.Second))):
		}
	case "false":
		return utilexec.CodeExitError{Err: errors.New("false"), Code: 1}
	case "exit":
		code, err := strconv.Atoi(strings.Join(cmd[1:], ""))
		if err != nil || code < 0 || code > 255 {
			code = 2
		}
		if code != 0 {
			return utilexec.CodeExitError{Err: fmt.Errorf("exit %d", code), Code: code}
		}
	default:
		write(errw, cmd[0]+": command not found (the sandbox's fake runtime knows echo, echo-err, cat, hostname, env, sleep, false, exit)\n")
		return utilexec.CodeExitError{Err: errors.New("command not found"), Code: 127}
	}
	return nil
}

// AttachContainer attaches to the container's main process, which greets and
// then echoes stdin to stdout until stdin closes (or, without stdin, until the
// client goes away).
func (fakeRuntime) AttachContainer(ctx context.Context, name string, _ types.UID, container string,
	in io.Reader, out, _ io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize) error {
	if out != nil {
		_, _ = io.WriteString(out, "attached to "+name+"/"+container+"\n")
	}
	if in != nil {
		if out != nil {
			_, _ = io.Copy(out, in)
		} else {
			_, _ = io.Copy(io.Discard, in)
		}
		return nil
	}
	<-ctx.Done()
	return nil
}

// PortForward serves the forwarded connection itself: port 7 echoes every
// byte; any other port answers one HTTP/1.x request with a short text body
// naming the pod and port, then closes.
func (fakeRuntime) PortForward(ctx context.Context, name string, _ types.UID, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	if port == echoPort {
		_, err := io.Copy(stream, stream)
		return ignoreClosed(err)
	}
	r := bufio.NewReaderSize(io.LimitReader(stream, 64<<10), 4096)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return ignoreClosed(err)
		}
		if strings.TrimRight(line, "\r\n") == "" {
			break
		}
	}
	body := fmt.Sprintf("hello from %s port %d\n", name, port)
	_, err := fmt.Fprintf(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	return ignoreClosed(err)
}

func ignoreClosed(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
		return nil
	}
	return err
}
