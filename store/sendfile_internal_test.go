package store

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// recordingClient answers every request and keeps the body it was given.
type recordingClient struct {
	body    io.ReadCloser
	content []byte
}

func (c *recordingClient) Do(req *http.Request) (*http.Response, error) {
	c.body = req.Body
	if req.Body != nil {
		c.content, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}}, nil
}

// A request with a file section reaches the transport with a body it can
// sendfile, holding exactly the section; any request it could not send
// that way keeps the SDK's body.
func TestFileSectionsReachTheTransportAsFiles(t *testing.T) {
	data := []byte(strings.Repeat("0123456789", 1000))
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	for _, tc := range []struct {
		name     string
		file     *os.File
		url      string
		off, n   int64
		length   int64 // the request's ContentLength
		encoding string
		sendfile bool
	}{
		{name: "section over http", file: f, url: "http://s3.test/b/k", off: 1234, n: 5000, length: 5000, sendfile: true},
		{name: "whole file", file: f, url: "http://s3.test/b/k", off: 0, n: int64(len(data)), length: int64(len(data)), sendfile: true},
		{name: "https", file: f, url: "https://s3.test/b/k", off: 0, n: 5000, length: 5000},
		{name: "body of another length", file: f, url: "http://s3.test/b/k", off: 0, n: 5000, length: 5100},
		{name: "aws-chunked", file: f, url: "http://s3.test/b/k", off: 0, n: 5000, length: 5000, encoding: "aws-chunked"},
		{name: "beyond the file", file: f, url: "http://s3.test/b/k", off: 9000, n: 5000, length: 5000},
		{name: "no file", url: "http://s3.test/b/k", off: 0, n: 5000, length: 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sdkBody := io.NopCloser(strings.NewReader("sdk body"))
			req, err := http.NewRequest(http.MethodPut, tc.url, sdkBody)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tc.length
			if tc.encoding != "" {
				req.Header.Set("Content-Encoding", tc.encoding)
			}
			rec := &recordingClient{}
			o := s3.Options{HTTPClient: rec}
			for _, fn := range withSendfile(tc.file, tc.off, tc.n) {
				fn(&o)
			}
			if _, err := o.HTTPClient.Do(req); err != nil {
				t.Fatal(err)
			}
			_, isFile := rec.body.(*filePart)
			if isFile != tc.sendfile {
				t.Fatalf("body sent as a file part: %v, want %v", isFile, tc.sendfile)
			}
			want := []byte("sdk body")
			if tc.sendfile {
				want = data[tc.off : tc.off+tc.n]
			}
			if !bytes.Equal(rec.content, want) {
				t.Fatalf("body holds %d bytes %.20q..., want %d bytes %.20q...", len(rec.content), rec.content, len(want), want)
			}
		})
	}
}
