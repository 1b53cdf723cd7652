package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/store"
)

// Kinds of problem verify reports.
const (
	ProblemMissingCache   = "missing-cache"
	ProblemBrokenManifest = "broken-manifest"
	ProblemInvalidDigest  = "invalid-digest"
	ProblemMissingBlob    = "missing-blob"
	ProblemSizeMismatch   = "size-mismatch"
	ProblemDigestMismatch = "digest-mismatch"
)

// Problem is one thing wrong with a cache.
type Problem struct {
	Kind   string   `json:"kind"`
	Blob   string   `json:"blob,omitempty"`
	Caches []string `json:"caches"`
	Detail string   `json:"detail"`
}

// VerifyOptions choose what verify checks.
type VerifyOptions struct {
	Names []string // caches to check, unless All
	All   bool     // every manifest under the prefix
	Deep  bool     // download every blob and check its digest
}

// VerifyReport is what verify checked and found.
type VerifyReport struct {
	Caches    int       `json:"caches"`
	Blobs     int       `json:"blobs"`
	Deep      bool      `json:"deep"`
	BytesRead int64     `json:"bytes_read"`
	Problems  []Problem `json:"problems"`
	// Signatures is what each cache's signature metadata says.
	Signatures []CacheSignature `json:"signatures"`
}

// CacheSignature is a cache's signature state.
type CacheSignature struct {
	Cache     string    `json:"cache"`
	Signature Signature `json:"signature"`
}

// ProblemsError is returned, after the report is rendered, when verify
// found problems; the command exits non-zero on it.
type ProblemsError struct{ N int }

func (e *ProblemsError) Error() string {
	if e.N == 1 {
		return "verify found 1 problem"
	}
	return fmt.Sprintf("verify found %d problems", e.N)
}

// blobCheck is one distinct blob and what each cache naming it says.
type blobCheck struct {
	digest string
	caches []string
	sizes  []int64 // per cache, the size its manifest gives (0: none)
}

// Verify checks that every blob the chosen manifests name exists with the
// size they give and, with Deep, that its bytes match its digest. Problems
// are in the report, and the error is then a *ProblemsError; any other
// error means the check could not be done.
func Verify(ctx context.Context, st store.Store, l store.Layout, vo VerifyOptions, opts Options) (*VerifyReport, error) {
	var (
		manifests []*Manifest
		listed    map[string]store.Object
		report    = &VerifyReport{Deep: vo.Deep, Problems: []Problem{}}
	)
	if vo.All {
		inv, err := Load(ctx, st, l, true, opts)
		if err != nil {
			return nil, err
		}
		manifests, listed = inv.Manifests, inv.Blobs
	} else {
		for _, name := range vo.Names {
			m, err := readNamed(ctx, st, l, name, opts)
			if errors.Is(err, store.ErrNotFound) {
				report.Problems = append(report.Problems, Problem{Kind: ProblemMissingCache, Caches: []string{name},
					Detail: fmt.Sprintf("no manifest at %s", l.ManifestKey(name))})
				continue
			}
			if err != nil {
				return nil, err
			}
			manifests = append(manifests, m)
		}
	}
	report.Caches = len(manifests)

	checks := map[string]*blobCheck{}
	for _, m := range manifests {
		report.Signatures = append(report.Signatures, CacheSignature{Cache: m.Name, Signature: m.Signature})
		if len(opts.VerifyKeys) > 0 && m.Signature.State == SignatureBad {
			report.Problems = append(report.Problems, Problem{Kind: ProblemBadSignature, Caches: []string{m.Name}, Detail: m.Signature.Detail})
		}
		if m.Broken() {
			report.Problems = append(report.Problems, Problem{Kind: ProblemBrokenManifest, Caches: []string{m.Name}, Detail: m.Err.Error()})
			continue
		}
		for _, layer := range m.Layers {
			if !isDigest(layer.Digest) {
				report.Problems = append(report.Problems, Problem{Kind: ProblemInvalidDigest, Blob: layer.Digest, Caches: []string{m.Name},
					Detail: "the manifest names a blob that is not a valid digest"})
				continue
			}
			c := checks[layer.Digest]
			if c == nil {
				c = &blobCheck{digest: layer.Digest}
				checks[layer.Digest] = c
			}
			c.caches = append(c.caches, m.Name)
			c.sizes = append(c.sizes, layer.Size)
		}
	}
	report.Blobs = len(checks)

	list := make([]*blobCheck, 0, len(checks))
	for _, c := range checks {
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].digest < list[j].digest })
	var (
		mu      sync.Mutex
		checked atomic.Int64
		read    atomic.Int64
	)
	add := func(p Problem) {
		mu.Lock()
		defer mu.Unlock()
		report.Problems = append(report.Problems, p)
	}
	// Which blobs exist: from the listing --all made, else probed.
	var idx *store.Index
	if listed != nil {
		objs := make([]store.Object, 0, len(listed))
		for d, o := range listed {
			o.Key = l.BlobKey(d)
			objs = append(objs, o)
		}
		idx = store.Listed(objs)
	} else {
		keys := make([]string, len(list))
		for i, c := range list {
			keys[i] = l.BlobKey(c.digest)
		}
		idx = opts.Prober.Probe(ctx, st, store.Query{Dir: l.BlobsDir(), Keys: keys, Parallel: opts.parallelism()})
	}
	eg, gctx := errgroup.WithContext(ctx)
	eg.SetLimit(opts.parallelism())
	for _, c := range list {
		eg.Go(func() error {
			n, err := checkBlob(gctx, st, l, c, idx, vo.Deep, add)
			read.Add(n)
			if done := checked.Add(1); done%progressEvery == 0 || (vo.Deep && done%100 == 0) {
				opts.progressf("checked %d of %d blobs", done, len(list))
			}
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	report.BytesRead = read.Load()
	sort.SliceStable(report.Problems, func(i, j int) bool {
		a, b := report.Problems[i], report.Problems[j]
		if a.Blob != b.Blob {
			return a.Blob < b.Blob
		}
		return strings.Join(a.Caches, ",") < strings.Join(b.Caches, ",")
	})
	if len(report.Problems) > 0 {
		return report, &ProblemsError{N: len(report.Problems)}
	}
	return report, nil
}

// readNamed reads the manifest of a name, with its modification time.
func readNamed(ctx context.Context, st store.Store, l store.Layout, name string, opts Options) (*Manifest, error) {
	obj, err := st.Stat(ctx, l.ManifestKey(name))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("check manifest %s: %w", Safe(name), err)
	}
	m, err := ReadManifest(ctx, st, l, obj, opts)
	if err != nil {
		return nil, err
	}
	m.Name = name
	return m, nil
}

// checkBlob checks one blob: existence and size from idx and, deep, its
// bytes. It returns the bytes read.
func checkBlob(ctx context.Context, st store.Store, l store.Layout, c *blobCheck, idx *store.Index, deep bool, add func(Problem)) (int64, error) {
	key := l.BlobKey(c.digest)
	obj, err := idx.Stat(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		add(Problem{Kind: ProblemMissingBlob, Blob: c.digest, Caches: c.caches, Detail: "not in the bucket at " + key})
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("check blob %s: %w", c.digest, err)
	}
	// Group the caches by the size they expect, so each wrong size is one problem.
	wrong := map[int64][]string{}
	for i, size := range c.sizes {
		if size > 0 && size != obj.Size {
			wrong[size] = append(wrong[size], c.caches[i])
		}
	}
	for size, caches := range wrong {
		add(Problem{Kind: ProblemSizeMismatch, Blob: c.digest, Caches: caches,
			Detail: fmt.Sprintf("%d bytes in the bucket, the manifest says %d", obj.Size, size)})
	}
	if !deep || len(wrong) > 0 {
		return 0, nil
	}
	n, err := hashBlob(ctx, st, key, digest.Digest(c.digest))
	switch {
	case errors.Is(err, store.ErrNotFound):
		add(Problem{Kind: ProblemMissingBlob, Blob: c.digest, Caches: c.caches, Detail: "deleted while being checked: " + key})
	case errors.Is(err, errDigestMismatch):
		add(Problem{Kind: ProblemDigestMismatch, Blob: c.digest, Caches: c.caches, Detail: err.Error()})
	case err != nil:
		return n, err
	}
	return n, nil
}

var errDigestMismatch = errors.New("content does not match the digest")

// hashBlob downloads a blob and checks it against its digest.
func hashBlob(ctx context.Context, st store.Store, key string, d digest.Digest) (int64, error) {
	body, err := st.Get(ctx, key, 0, -1)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return 0, err
		}
		return 0, fmt.Errorf("download blob %s: %w", d, err)
	}
	defer body.Close()
	alg := d.Algorithm()
	if !alg.Available() {
		return 0, fmt.Errorf("check blob %s: digest algorithm %q is not available", d, alg)
	}
	h := alg.Digester()
	n, err := io.Copy(h.Hash(), body)
	if err != nil {
		return n, fmt.Errorf("download blob %s: %w", d, err)
	}
	if got := h.Digest(); got != d {
		return n, fmt.Errorf("%w: its %d bytes hash to %s", errDigestMismatch, n, got)
	}
	return n, nil
}

// Write renders the report.
func (r *VerifyReport) Write(w io.Writer, f Format) error {
	if f == FormatJSON {
		return WriteJSON(w, r)
	}
	if err := r.writeSignatures(w); err != nil {
		return err
	}
	what := "existence and sizes"
	if r.Deep {
		what = fmt.Sprintf("existence, sizes and digests (%s read)", FormatBytes(r.BytesRead))
	}
	if len(r.Problems) == 0 {
		_, err := fmt.Fprintf(w, "ok: %s, %s checked for %s\n", plural(r.Caches, "cache"), plural(r.Blobs, "blob"), what)
		return err
	}
	tw := NewTable(w)
	fmt.Fprintln(tw, "PROBLEM\tBLOB\tCACHES\tDETAIL")
	for _, p := range r.Problems {
		blob := p.Blob
		if blob == "" {
			blob = "-"
		}
		names := make([]string, len(p.Caches))
		for i, n := range p.Caches {
			names[i] = Safe(n)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Kind, Safe(blob), strings.Join(names, ", "), oneLine(p.Detail))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	_, err := fmt.Fprintf(w, "%s in %s, %s checked for %s\n", plural(len(r.Problems), "problem"), plural(r.Caches, "cache"), plural(r.Blobs, "blob"), what)
	return err
}
