package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// validity of the sandbox CA and its certificates: ten years, so that the product can be run
// under a clock years ahead (test/sandbox/clock.test.ts) against a sandbox started today.
const validity = 10 * 365 * 24 * time.Hour

// runPKI writes one cluster's certificates and keys into --dir: a fresh CA, the
// apiserver's serving certificate, client certificates (admin in
// system:masters, the apiserver's kubelet client, the node, the controllers),
// the kubelet's serving certificate and the service-account signing key pair.
// ECDSA P-256 throughout; every certificate is signed by the cluster's own CA.
func runPKI(args []string) error {
	fs := flag.NewFlagSet("pki", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to write into")
	nodeName := fs.String("node-name", "", "the fake kubelet's node name")
	cluster := fs.String("cluster", "sandbox", "cluster name, used in the CA's common name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *nodeName == "" {
		return fmt.Errorf("pki: --dir and --node-name are required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	now := time.Now()
	caKey, err := newKey()
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "portcullis-sandbox-ca-" + *cluster},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePair(*dir, "ca", caDER, caKey); err != nil {
		return err
	}
	loopback := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	leaves := []struct {
		name  string
		cn    string
		orgs  []string
		usage x509.ExtKeyUsage
		dns   []string
		ips   []net.IP
	}{
		{"apiserver", "kube-apiserver", nil, x509.ExtKeyUsageServerAuth,
			[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
			append(loopback, net.ParseIP("10.0.0.1"))},
		{"admin", "sandbox-admin", []string{"system:masters"}, x509.ExtKeyUsageClientAuth, nil, nil},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, x509.ExtKeyUsageClientAuth, nil, nil},
		{"controllers", "sandbox-controllers", []string{"system:masters"}, x509.ExtKeyUsageClientAuth, nil, nil},
		{"node", "system:node:" + *nodeName, []string{"system:nodes"}, x509.ExtKeyUsageClientAuth, nil, nil},
		{"kubelet", *nodeName, nil, x509.ExtKeyUsageServerAuth, []string{"localhost", *nodeName}, loopback},
	}
	for _, l := range leaves {
		key, err := newKey()
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: serial(),
			Subject:      pkix.Name{CommonName: l.cn, Organization: l.orgs},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(validity),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  []x509.ExtKeyUsage{l.usage},
			DNSNames:     l.dns,
			IPAddresses:  l.ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
		if err != nil {
			return err
		}
		if err := writePair(*dir, l.name, der, key); err != nil {
			return err
		}
	}
	saKey, err := newKey()
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(*dir, "sa.key"), saKey); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err)
	}
	return n
}

func writePair(dir, name string, der []byte, key crypto.Signer) error {
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return writeKey(filepath.Join(dir, name+".key"), key)
}

func writeKey(path string, key crypto.Signer) error {
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("unexpected key type %T", key)
	}
	der, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}
