package testenv

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3Server is a running versitygw: an S3 API on loopback backed by a
// temporary directory, private to one test.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT or https://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string
	// CACertPEM is the self-signed certificate of an HTTPS server (nil over
	// HTTP); CACertFile holds the same, for AWS_CA_BUNDLE in subprocesses.
	CACertPEM  []byte
	CACertFile string
	// DataDir is the posix backend's root: one directory per bucket.
	DataDir string
}

// Env returns the standard AWS variables that point an SDK (Go, boto3, a
// worker subprocess) at this server, IMDS disabled.
func (s S3Server) Env() []string {
	env := []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	if s.CACertFile != "" {
		env = append(env, "AWS_CA_BUNDLE="+s.CACertFile)
	}
	return env
}

const (
	s3Region       = "us-east-1"
	s3StartTimeout = 30 * time.Second
	// s3StartAttempts covers losing the free port to another process
	// between choosing it and versitygw binding it.
	s3StartAttempts = 3
)

// S3 starts versitygw (posix backend) on a free 127.0.0.1 port with random
// root keys, over HTTPS with a freshly generated self-signed certificate
// for 127.0.0.1 when useTLS is set, and stops it when the test ends. The
// binary comes from scripts/setup.sh (GOPATH/bin/versitygw); PATH is tried
// first.
func S3(t testing.TB, useTLS bool) S3Server {
	t.Helper()
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s=1: skipping S3 integration test", SkipEnv)
	}
	bin, err := versitygwPath()
	if err != nil {
		t.Fatalf("testenv: %v (run `bash scripts/setup.sh`, or set %s=1 to skip)", err, SkipEnv)
	}
	dir := t.TempDir()
	srv := S3Server{
		AccessKey: "AK" + strings.ToUpper(s3RandomHex(9)),
		SecretKey: s3RandomHex(20),
		Region:    s3Region,
		DataDir:   filepath.Join(dir, "data"),
	}
	if err := os.Mkdir(srv.DataDir, 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var certFile, keyFile string
	if useTLS {
		certPEM, keyPEM, err := s3SelfSignedCert()
		if err != nil {
			t.Fatalf("testenv: generating a certificate: %v", err)
		}
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		srv.CACertPEM, srv.CACertFile = certPEM, certFile
	}

	var lastErr error
	for attempt := 0; attempt < s3StartAttempts; attempt++ {
		port, err := s3FreePort()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		scheme := "http"
		if useTLS {
			scheme = "https"
		}
		srv.Endpoint = scheme + "://127.0.0.1:" + strconv.Itoa(port)
		logFile := filepath.Join(dir, fmt.Sprintf("versitygw-%d.log", attempt))
		cmd, err := startVersitygw(bin, srv, port, certFile, keyFile, logFile)
		if err != nil {
			t.Fatalf("testenv: starting versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if lastErr = waitS3(srv, exited); lastErr == nil {
			t.Cleanup(func() { stopVersitygw(t, cmd, exited) })
			return srv
		}
		stopVersitygw(t, cmd, exited)
		log, _ := os.ReadFile(logFile)
		lastErr = fmt.Errorf("%w\nversitygw output:\n%s", lastErr, s3LogTail(log, 2000))
	}
	t.Fatalf("testenv: versitygw did not start: %v", lastErr)
	return S3Server{}
}

func versitygwPath() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		out, err := exec.Command("go", "env", "GOPATH").Output()
		if err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	if gopath == "" {
		return "", errors.New("versitygw not found in PATH and GOPATH unknown")
	}
	p := filepath.Join(strings.Split(gopath, string(os.PathListSeparator))[0], "bin", "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("versitygw not found in PATH nor at %s", p)
	}
	return p, nil
}

func startVersitygw(bin string, srv S3Server, port int, certFile, keyFile, logFile string) (*exec.Cmd, error) {
	args := []string{"--port", "127.0.0.1:" + strconv.Itoa(port), "--region", srv.Region, "--quiet"}
	if certFile != "" {
		args = append(args, "--cert", certFile, "--key", keyFile)
	}
	args = append(args, "posix", srv.DataDir)
	cmd := exec.Command(bin, args...)
	// Keys through the environment, not argv, where ps would show them.
	cmd.Env = append(os.Environ(),
		"ROOT_ACCESS_KEY_ID="+srv.AccessKey,
		"ROOT_SECRET_ACCESS_KEY="+srv.SecretKey,
	)
	// A test binary killed by -timeout runs no cleanup: take the server
	// down with it instead of leaking it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// waitS3 polls until the server answers HTTP(S) (any status: anonymous
// requests are refused, which still proves it serves), or exits.
func waitS3(srv S3Server, exited <-chan error) error {
	tr := &http.Transport{Proxy: nil}
	if srv.CACertPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(srv.CACertPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	defer tr.CloseIdleConnections()
	deadline := time.Now().Add(s3StartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited: %v", err)
		default:
		}
		resp, err := client.Get(srv.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer on %s within %v: %v", srv.Endpoint, s3StartTimeout, lastErr)
}

func stopVersitygw(t testing.TB, cmd *exec.Cmd, exited <-chan error) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return
	case <-time.After(5 * time.Second):
	}
	t.Logf("testenv: versitygw (pid %d) ignored SIGTERM; killing it", cmd.Process.Pid)
	_ = cmd.Process.Kill()
	<-exited
}

func s3FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// s3SelfSignedCert makes a CA-capable certificate for 127.0.0.1 and
// localhost, so it can be both the server's certificate and the client's
// only root.
func s3SelfSignedCert() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "renderfarm testenv S3"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

func s3RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func s3LogTail(b []byte, n int) []byte {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Client is a plain SDK client for this server, for what tests do around
// the code under test: creating buckets, reading object headers back.
func (s S3Server) Client(t testing.TB) *s3.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil}
	if s.CACertPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(s.CACertPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:                 &http.Client{Transport: tr},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket makes a bucket on this server.
func (s S3Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	if _, err := s.Client(t).CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("testenv: CreateBucket %s: %v", name, err)
	}
}
