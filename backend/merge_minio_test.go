package backend_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/internal/testutil/proxytest"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
	"github.com/s3cache/s3cache/store/storetest"
)

// proxiedBucket is a MinIO bucket reached through a proxy, and the spy on
// the store the exports open.
func proxiedBucket(t *testing.T) (*cachetest.Bucket, *proxytest.Proxy, *storetest.Spy, *logLines, cachetest.ExportOptions) {
	t.Helper()
	b := cachetest.NewBucket(t, "")
	cfg, err := spec.Parse(b.With("name=main"))
	if err != nil {
		t.Fatal(err)
	}
	proxy := proxytest.New(t, cfg.EndpointURL)
	cfg.EndpointURL = proxy.URL
	st, err := store.New(context.Background(), cfg, store.Options{HTTPClient: proxy.Client()})
	if err != nil {
		t.Fatal(err)
	}
	spy := storetest.NewSpy(st)
	logs := &logLines{}
	opts := cachetest.Through(spy)
	opts.Logf = logs.logf
	return b, proxy, spy, logs, opts
}

func conditional(r *http.Request) bool {
	return r.Header.Get("If-Match") != "" || r.Header.Get("If-None-Match") != ""
}

// Conflicts are real: the proxy holds one export's conditional manifest
// PUT until the other export's manifest is in the bucket; MinIO then
// refuses the held one (412), and that export reads, merges and writes
// again: the manifest holds the steps of both.
func TestMergeConflictOnMinIO(t *testing.T) {
	b, proxy, spy, logs, opts := proxiedBucket(t)
	key := b.Layout.ManifestKey("main")
	proxy.AddFault(proxytest.Fault{Kind: proxytest.Pass, Method: http.MethodPut, Key: "/" + key, Times: 1, Match: conditional,
		OnRequest: func(r *http.Request) {
			// Held until the other export's manifest is there.
			deadline := time.Now().Add(time.Minute)
			for time.Now().Before(deadline) {
				if _, err := b.Store.Stat(context.Background(), key); err == nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}})
	var refused atomic.Int32
	spy.After = func(op storetest.Op, _ string, err error) error {
		if op == storetest.OpPutIf && errors.Is(err, store.ErrPreconditionFailed) {
			refused.Add(1)
		}
		return err
	}
	f := cachetest.New()
	a, c := f.Layers(t, 100, 101), f.Layers(t, 200)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, ls := range [][]cachetest.Layer{a, c} {
		wg.Go(func() { errs[i] = f.ExportE(t.Context(), opts, b.Attrs(t, "name=main", "merge=true"), ls...) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if refused.Load() != 1 {
		t.Fatalf("%d conditional writes refused, want 1 (the held one)", refused.Load())
	}
	steps := stepsOf(t, b.Store, "main")
	requireSteps(t, steps, a, true)
	requireSteps(t, steps, c, true)
	if lines := logs.matching(""); len(lines) > 0 {
		t.Errorf("warnings: %q", lines)
	}
}

// A store answering conditional PUTs with 501: one warning naming the
// answer, and the merged manifest written without a condition.
func TestMergeFallbackOnMinIO(t *testing.T) {
	b, proxy, _, logs, opts := proxiedBucket(t)
	f := cachetest.New()
	a, c := f.Layers(t, 100), f.Layers(t, 200)
	f.Export(t, opts, b.Attrs(t, "name=main"), a...)
	proxy.AddFault(proxytest.Fault{Kind: proxytest.Status, Method: http.MethodPut, Status: http.StatusNotImplemented, Code: "NotImplemented", Match: conditional})
	f.Export(t, opts, b.Attrs(t, "name=main", "merge=true"), c...)
	warnings := logs.matching("refused a conditional write")
	if len(warnings) != 1 || !strings.Contains(warnings[0], "NotImplemented") {
		t.Fatalf("warnings %q, want one naming the store's answer", logs.matching(""))
	}
	steps := stepsOf(t, b.Store, "main")
	requireSteps(t, steps, a, true)
	requireSteps(t, steps, c, true)
}
