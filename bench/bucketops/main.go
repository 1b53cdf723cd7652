// Command bucketops times the bucket commands (ls, du, verify, prune) on a
// MinIO bucket holding 20,000 small blobs and 200 cache manifests, and
// counts the S3 requests each makes. Run it with `make bench-bucket`; the
// results go in bench/bucketops.md.
//
// The bucket: 1,000 base blobs shared by the caches (each cache names 25
// of them), 50 blobs of its own per cache (10,000), and 9,000 blobs no
// cache names, as left by caches whose manifests are gone. The manifests
// are written by our exporter, each a chain of 75 steps.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/gc"
	"github.com/s3cache/s3cache/internal/testutil/cachetest"
	"github.com/s3cache/s3cache/internal/testutil/miniotest"
	"github.com/s3cache/s3cache/inventory"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

func main() {
	var (
		caches  = flag.Int("caches", 200, "cache manifests")
		base    = flag.Int("base", 1000, "base blobs the caches share")
		perBase = flag.Int("per-cache-base", 25, "base blobs each cache names")
		own     = flag.Int("per-cache-own", 50, "blobs of each cache's own")
		orphans = flag.Int("orphans", 9000, "blobs no cache names")
		size    = flag.Int("blob-size", 1024, "bytes per blob")
	)
	flag.Parse()
	if err := run(*caches, *base, *perBase, *own, *orphans, *size); err != nil {
		fmt.Fprintln(os.Stderr, "bench-bucket:", err)
		os.Exit(1)
	}
}

// counter counts the HTTP requests the S3 client sends, by kind, and the
// time they took (summed over requests in parallel).
type counter struct {
	next  aws.HTTPClient
	mu    sync.Mutex
	count map[string]int
	spent map[string]time.Duration
}

func (c *counter) Do(req *http.Request) (*http.Response, error) {
	kind := req.Method
	q := req.URL.Query()
	switch {
	case req.Method == http.MethodGet && q.Has("list-type"):
		kind = "LIST"
	case req.Method == http.MethodPost && q.Has("delete"):
		kind = "DELETE"
	case req.Method == http.MethodPut && req.Header.Get("X-Amz-Copy-Source") != "":
		kind = "COPY"
	}
	t0 := time.Now()
	resp, err := c.next.Do(req)
	c.mu.Lock()
	c.count[kind]++
	c.spent[kind] += time.Since(t0)
	c.mu.Unlock()
	return resp, err
}

func (c *counter) take() (map[string]int, map[string]time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	count, spent := c.count, c.spent
	c.count, c.spent = map[string]int{}, map[string]time.Duration{}
	return count, spent
}

func format(counts map[string]int, spent map[string]time.Duration) (int, string) {
	total := 0
	var parts []string
	for _, k := range []string{"LIST", "GET", "HEAD", "PUT", "COPY", "DELETE", "POST"} {
		if n := counts[k]; n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%d %s (%s)", n, k, spent[k].Round(time.Millisecond)))
		}
	}
	return total, strings.Join(parts, ", ")
}

func run(nCaches, nBase, perBase, nOwn, nOrphans, size int) error {
	ctx := context.Background()
	srv, err := miniotest.Start()
	if err != nil {
		return err
	}
	defer srv.Stop()
	bucket := "bench"
	if _, err := srv.Client("").CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	cfg, err := spec.Parse("type=s3," + srv.Spec(bucket))
	if err != nil {
		return err
	}
	cnt := &counter{next: awshttp.NewBuildableClient(), count: map[string]int{}, spent: map[string]time.Duration{}}
	st, err := store.New(ctx, cfg, store.Options{HTTPClient: cnt})
	if err != nil {
		return err
	}
	l := st.Layout()

	// Fill: every blob first, straight to the store, then the manifests
	// through the exporter, which finds every blob there.
	start := time.Now()
	f := cachetest.New()
	sizes := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = size
		}
		return out
	}
	baseLayers, err := f.NewLayers(sizes(nBase)...)
	if err != nil {
		return err
	}
	ownLayers, err := f.NewLayers(sizes(nCaches * nOwn)...)
	if err != nil {
		return err
	}
	orphanLayers, err := f.NewLayers(sizes(nOrphans)...)
	if err != nil {
		return err
	}
	all := append(append(append([]cachetest.Layer{}, baseLayers...), ownLayers...), orphanLayers...)
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(64)
	for _, layer := range all {
		eg.Go(func() error {
			return st.Put(gctx, l.BlobKey(layer.Digest()), store.BytesBody(layer.Data))
		})
	}
	if err := eg.Wait(); err != nil {
		return fmt.Errorf("fill blobs: %w", err)
	}
	opts := cachetest.Through(st)
	eg, gctx = errgroup.WithContext(ctx)
	eg.SetLimit(8)
	for i := range nCaches {
		var layers []cachetest.Layer
		for j := range perBase {
			layers = append(layers, baseLayers[(i*5+j)%nBase])
		}
		layers = append(layers, ownLayers[i*nOwn:(i+1)*nOwn]...)
		attrs := map[string]string{}
		for k, v := range cfg.Attrs() {
			attrs[k] = v
		}
		attrs["name"] = fmt.Sprintf("branch-%03d", i)
		eg.Go(func() error { return f.ExportE(gctx, opts, attrs, layers...) })
	}
	if err := eg.Wait(); err != nil {
		return fmt.Errorf("fill manifests: %w", err)
	}
	cnt.take()
	fmt.Printf("filled %d blobs of %d bytes and %d manifests in %s\n\n", len(all), size, nCaches, time.Since(start).Round(time.Millisecond))

	fmt.Println("| operation | time | requests | by kind (time in requests, summed) | result |")
	fmt.Println("|---|---|---|---|---|")
	step := func(name string, fn func() (string, error)) error {
		cnt.take()
		t0 := time.Now()
		result, err := fn()
		d := time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		total, kinds := format(cnt.take())

		fmt.Printf("| %s | %s | %d | %s | %s |\n", name, d.Round(time.Millisecond), total, kinds, result)
		return nil
	}
	inv := inventory.Options{}
	// prune plans and executes, as `s3cache prune` does.
	prune := func(opts gc.Options) (*gc.Result, error) {
		pr := gc.New(st, l, opts)
		plan, err := pr.Plan(ctx)
		if err != nil {
			return nil, err
		}
		return pr.Execute(ctx, plan)
	}
	steps := []struct {
		name string
		fn   func() (string, error)
	}{
		{"ls", func() (string, error) {
			r, err := inventory.Ls(ctx, st, l, inv)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d caches", len(r.Caches)), nil
		}},
		{"du", func() (string, error) {
			r, err := inventory.DU(ctx, st, l, inv)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d blobs, %d referenced, %d unreferenced", r.Blobs.Objects, r.Referenced.Objects, r.Unreferenced.Objects), nil
		}},
		{"verify --all", func() (string, error) {
			r, err := inventory.Verify(ctx, st, l, inventory.VerifyOptions{All: true}, inv)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d caches, %d blobs ok", r.Caches, r.Blobs), nil
		}},
		{"prune --dry-run --grace 0s", func() (string, error) {
			plan, err := gc.New(st, l, gc.Options{Grace: 0, KeepStorage: gc.NoLimit}).Plan(ctx)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("would delete %d blobs", plan.Sweep.Objects), nil
		}},
		{"prune --grace 0s", func() (string, error) {
			res, err := prune(gc.Options{Grace: 0, KeepStorage: gc.NoLimit})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("deleted %d blobs (%s)", res.Deleted.Objects, inventory.FormatBytes(res.Deleted.Bytes)), nil
		}},
		{"prune --grace 0s (nothing left)", func() (string, error) {
			res, err := prune(gc.Options{Grace: 0, KeepStorage: gc.NoLimit})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("deleted %d blobs", res.Deleted.Objects), nil
		}},
		{"prune --keep-duration 1ns --grace 0s", func() (string, error) {
			res, err := prune(gc.Options{Grace: 0, KeepDuration: time.Nanosecond, KeepStorage: gc.NoLimit})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("dropped %d caches, deleted %d blobs", len(res.Dropped), res.Deleted.Objects), nil
		}},
	}
	for _, s := range steps {
		if err := step(s.name, s.fn); err != nil {
			return err
		}
	}
	_, _ = io.WriteString(os.Stdout, "\n")
	return nil
}
