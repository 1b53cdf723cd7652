package store_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// doerFunc is an HTTP client answering every request itself.
type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// Keys that DeleteObjects reports as failed (with HTTP 200) make an error.
func TestDeletePerKeyErrors(t *testing.T) {
	const result = `<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Error><Key>blobs/sha256:b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
<Error><Key>blobs/sha256:c</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
</DeleteResult>`
	client := doerFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{
			StatusCode: http.StatusOK,
			Header:     http.Header{"Content-Type": {"application/xml"}},
			Body:       io.NopCloser(strings.NewReader(result)),
			Request:    r,
		}, nil
	})
	cfg := spec.Config{Region: "us-east-1", Bucket: "b", EndpointURL: "http://127.0.0.1:1", UsePathStyle: true,
		AccessKeyID: "AK", SecretAccessKey: "SK"}
	st, err := store.New(context.Background(), cfg, store.Options{HTTPClient: client})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Delete(context.Background(), []string{"blobs/sha256:a", "blobs/sha256:b", "blobs/sha256:c"})
	if err == nil || !strings.Contains(err.Error(), "blobs/sha256:b") || !strings.Contains(err.Error(), "2 of 3") {
		t.Fatalf("err = %v, want one naming the first failed key and the count", err)
	}
	// The key S3 did not report failed was deleted, and a caller can count it.
	var de *store.DeleteError
	if !errors.As(err, &de) || !slices.Equal(de.Deleted, []string{"blobs/sha256:a"}) {
		t.Fatalf("err = %#v, want a DeleteError with blobs/sha256:a deleted", err)
	}
}
