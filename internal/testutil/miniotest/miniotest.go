// Package miniotest runs a real MinIO server on a random loopback port for
// tests: one server per test binary, one fresh bucket per test.
package miniotest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	// AccessKey and SecretKey are the root credentials of every test server.
	AccessKey = "s3cache-test"
	SecretKey = "s3cache-test-secret"
	// Region is what tests pass as region; MinIO accepts any.
	Region = "us-east-1"
)

// Server is a running MinIO.
type Server struct {
	Endpoint string // http://127.0.0.1:port
	dir      string
	cmd      *exec.Cmd
	log      *bytes.Buffer
}

// Pid is the MinIO server's process ID.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

var (
	shared     *Server
	sharedErr  error
	sharedOnce sync.Once
	bucketSeq  atomic.Int64
)

// Main runs the tests of a package and stops the shared server afterwards.
// Use it from TestMain: func TestMain(m *testing.M) { os.Exit(miniotest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// Binary finds the minio executable: $MINIO_BIN, then PATH.
func Binary() (string, error) {
	if p := os.Getenv("MINIO_BIN"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("minio")
	if err != nil {
		return "", fmt.Errorf("minio not found on PATH nor in $MINIO_BIN (install it with scripts/install-test-deps.sh): %w", err)
	}
	return p, nil
}

// Shared returns the package's server, starting it on first use. Without a
// minio binary the test is skipped, except under CI=true where it fails.
func Shared(t testing.TB) *Server {
	t.Helper()
	sharedOnce.Do(func() {
		shared, sharedErr = Start()
	})
	if sharedErr != nil {
		if os.Getenv("CI") != "true" && strings.Contains(sharedErr.Error(), "minio not found") {
			t.Skipf("skipping: %v", sharedErr)
		}
		t.Fatalf("start minio: %v", sharedErr)
	}
	return shared
}

// FreePort is a loopback TCP port nothing listens on at the moment.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start launches a new server in a temporary directory.
func Start() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(bin)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(bin string) (*Server, error) {
	dir, err := os.MkdirTemp("", "miniotest-")
	if err != nil {
		return nil, fmt.Errorf("minio data dir: %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("pick minio port: %w", err)
	}
	consolePort, err := FreePort()
	if err != nil {
		return nil, fmt.Errorf("pick minio console port: %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", "--quiet",
		"--address", addr, "--console-address", fmt.Sprintf("127.0.0.1:%d", consolePort),
		filepath.Join(dir, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+AccessKey,
		"MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=1",
	)
	log := &bytes.Buffer{}
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{Endpoint: "http://" + addr, dir: dir, cmd: cmd, log: log}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("minio exited before ready (%v): %s", err, log.String())
		default:
		}
		resp, err := http.Get(s.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				go func() { <-exited }()
				return s, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	os.RemoveAll(dir)
	return nil, fmt.Errorf("minio not ready after 60s: %s", log.String())
}

// Stop kills the server and removes its data.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	os.RemoveAll(s.dir)
}

// Client returns an S3 client with the root credentials for endpoint (the
// server's own when empty, or a proxy in front of it).
func (s *Server) Client(endpoint string) *s3.Client {
	if endpoint == "" {
		endpoint = s.Endpoint
	}
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
}

// Bucket creates a fresh, empty bucket for this test.
func (s *Server) Bucket(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%d", time.Now().UnixNano()%1e9, bucketSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.CreateBucket(ctx, name); err != nil {
		t.Fatal(err)
	}
	return name
}

// CreateBucket makes a bucket.
func (s *Server) CreateBucket(ctx context.Context, name string) error {
	if _, err := s.Client("").CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", name, err)
	}
	return nil
}

// Spec returns the cache spec attributes that reach this server's bucket
// (type=s3 not included), for tests that build a spec string.
func (s *Server) Spec(bucket string) string {
	return fmt.Sprintf("region=%s,bucket=%s,endpoint_url=%s,use_path_style=true,access_key_id=%s,secret_access_key=%s",
		Region, bucket, s.Endpoint, AccessKey, SecretKey)
}

// AllowPublicRead sets a bucket policy that lets anyone, unsigned, get
// and list the bucket's objects: a public cache for anonymous=true.
func (s *Server) AllowPublicRead(ctx context.Context, bucket string) error {
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[`+
		`{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%[1]s/*"]},`+
		`{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::%[1]s"]}]}`, bucket)
	if _, err := s.Client("").PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
		return fmt.Errorf("set public-read policy on bucket %s: %w", bucket, err)
	}
	return nil
}

// AnonymousSpec is Spec without credentials, with anonymous=true.
func (s *Server) AnonymousSpec(bucket string) string {
	return fmt.Sprintf("region=%s,bucket=%s,endpoint_url=%s,use_path_style=true,anonymous=true", Region, bucket, s.Endpoint)
}
