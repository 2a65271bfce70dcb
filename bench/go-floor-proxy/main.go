// Command go-floor-proxy is the floor of a Go reverse proxy for bench/proxy.ts: TLS in,
// a keep-alive pool with verified TLS out (HTTP/1.1), headers copied, body streamed.
// No authentication, authorization or audit: what a compiled data plane would cost
// before Portcullis' own work. Prints one JSON line {"port": N} once listening.
//
// Usage: go-floor-proxy UPSTREAM_URL CA_FILE CERT_FILE KEY_FILE
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: go-floor-proxy UPSTREAM_URL CA_FILE CERT_FILE KEY_FILE")
		os.Exit(2)
	}
	upstream, err := url.Parse(os.Args[1])
	check(err)
	caPEM, err := os.ReadFile(os.Args[2])
	check(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		check(fmt.Errorf("no certificates in %s", os.Args[2]))
	}
	cert, err := tls.LoadX509KeyPair(os.Args[3], os.Args[4])
	check(err)

	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream) // also sets the outbound Host
		},
		Transport:     transport,
		FlushInterval: -1, // stream as it arrives, like the Node proxies
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	srv := &http.Server{
		Handler:   proxy,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}},
	}
	fmt.Printf("{\"port\": %d}\n", ln.Addr().(*net.TCPAddr).Port)
	check(srv.ServeTLS(ln, "", ""))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-floor-proxy:", err)
		os.Exit(1)
	}
}
