package store

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// An upload whose body has a file (Body.File) is sent with sendfile(2)
// over plain HTTP: the kernel hands page-cache pages to the socket, where
// the SDK's body would copy every byte into the process and back out,
// 32 KiB per system call. On a machine shared with the bucket (MinIO
// beside the build) that CPU is the bucket's. HTTPS, or a file that is not
// a regular file, keeps the SDK's body.

// fileSection is bytes [off, off+n) of f.
type fileSection struct {
	f      *os.File
	off, n int64
}

// withSendfile is the per-request option that sends the request's body,
// bytes [off, off+n) of f, with sendfile: it wraps the client's HTTP client
// for this request only. A nil f changes nothing.
func withSendfile(f *os.File, off, n int64) []func(*s3.Options) {
	if f == nil || n <= 0 {
		return nil
	}
	sec := fileSection{f: f, off: off, n: n}
	return []func(*s3.Options){func(o *s3.Options) {
		o.HTTPClient = sendfileClient{next: o.HTTPClient, sec: sec}
	}}
}

// sendfileClient hands the transport a body it can send with sendfile,
// the file section sec.
type sendfileClient struct {
	next s3.HTTPClient
	sec  fileSection
}

func (c sendfileClient) Do(req *http.Request) (*http.Response, error) {
	// The section must be the whole body: not aws-chunked, not re-encoded.
	if req.URL.Scheme != "http" || req.ContentLength != c.sec.n || req.Header.Get("Content-Encoding") != "" {
		return c.next.Do(req)
	}
	part, err := c.sec.open()
	if err != nil {
		return c.next.Do(req) // the SDK's body still reads the file
	}
	if req.Body != nil {
		_ = req.Body.Close()
	}
	// The transport closes the body once it is sent, or on any failure.
	req.Body, req.GetBody = part, nil
	return c.next.Do(req)
}

// open gives the section its own open file description, so parts of one
// file sent at once each have their own file position, which sendfile
// reads from and advances.
func (s fileSection) open() (*filePart, error) {
	raw, err := s.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var f *os.File
	var oerr error
	// Inside Control the descriptor stays open while it is reopened.
	if err := raw.Control(func(fd uintptr) {
		f, oerr = os.Open("/proc/self/fd/" + strconv.FormatUint(uint64(fd), 10))
	}); err != nil {
		return nil, err
	}
	if oerr != nil {
		return nil, oerr
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err == nil && fi.Size() < s.off+s.n {
		err = errors.New("file shorter than the upload")
	}
	if err == nil {
		_, err = f.Seek(s.off, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &filePart{f: f, end: s.off + s.n}, nil
}

// filePart reads a file up to end. The transport sends it with sendfile
// through SyscallConn, which moves the file position without Read, so Read
// finds where it is from the position.
type filePart struct {
	f   *os.File
	end int64
}

func (p *filePart) Read(b []byte) (int, error) {
	pos, err := p.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if pos >= p.end {
		return 0, io.EOF
	}
	if int64(len(b)) > p.end-pos {
		b = b[:p.end-pos]
	}
	return p.f.Read(b)
}

func (p *filePart) Close() error { return p.f.Close() }

// SyscallConn lets net.TCPConn.ReadFrom use sendfile.
func (p *filePart) SyscallConn() (syscall.RawConn, error) { return p.f.SyscallConn() }
