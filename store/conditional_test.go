package store_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/internal/testutil/proxytest"
	"github.com/s3cache/s3cache/store"
)

// A store that refuses conditional writes says so with
// ErrConditionalNotSupported, its answer in the error.
func TestPutIfNotSupported(t *testing.T) {
	srv := miniotest.Shared(t)
	proxy := proxytest.New(t, srv.Endpoint)
	opts := smallOptions()
	opts.HTTPClient = proxy.Client()
	st := newStore(t, testConfig(srv, srv.Bucket(t), proxy.URL), opts)
	ctx := testCtx(t)
	proxy.AddFault(proxytest.Fault{Kind: proxytest.Status, Method: http.MethodPut, Status: http.StatusNotImplemented, Code: "NotImplemented",
		Match: func(r *http.Request) bool {
			return r.Header.Get("If-Match") != "" || r.Header.Get("If-None-Match") != ""
		}})
	err := st.PutIf(ctx, "m", store.BytesBody([]byte("x")), store.NoObject)
	if !errors.Is(err, store.ErrConditionalNotSupported) || !strings.Contains(err.Error(), "NotImplemented") {
		t.Fatalf("PutIf through a store answering 501: %v, want ErrConditionalNotSupported naming NotImplemented", err)
	}
	// A plain Put still works.
	if err := st.Put(ctx, "m", store.BytesBody([]byte("x"))); err != nil {
		t.Fatal(err)
	}
}
