package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	cacheimporttypes "github.com/moby/buildkit/cache/remotecache/v1/types"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/manifest"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// The merge10k workload (issue 18): an export with merge=true into a name
// whose manifest already holds mergeSeedRecords records of other writers,
// against the same export with merge=false. Upstream has no merge: both
// sides are our daemon.

const (
	mergePrefix = "merge10k/"
	mergeName   = "main"
	// The seed is mergeSeedWriters chains of mergeSeedChain steps, each
	// step a record with one result on a layer of its own, as a mode=max
	// export of a Dockerfile of that many RUN steps writes.
	mergeSeedWriters = 200
	mergeSeedChain   = 50
	mergeSeedRecords = mergeSeedWriters * mergeSeedChain
	mergeSeedBlob    = 512 // bytes of each seeded layer blob
	mergeTarget      = 1.3 // merge=true / merge=false
)

// Phases of merge10k: the export without and with merge, warm (every blob
// of ours in the bucket) and cold (ours deleted first).
const (
	phaseMergeWarmOff = "warm export, merge=false"
	phaseMergeWarmOn  = "warm export, merge=true"
	phaseMergeColdOff = "cold export, merge=false"
	phaseMergeColdOn  = "cold export, merge=true"
)

// mergeSeed is the seeded manifest and its blobs.
type mergeSeed struct {
	json  []byte
	blobs map[string]bool // blob keys
}

// mergeResult is what measureMerge found beyond the timings.
type mergeResult struct {
	wl          *workload
	seedBytes   int
	seedLayers  int
	records     []int // records of the manifest each merge=true export wrote
	seedTime    time.Duration
	environment []string
	// The store alone, for where a merge's time goes: one listing of the
	// prefix's blobs, and a HEAD of each seeded blob, mergeHeads at a time.
	listTime, headTime time.Duration
	listed             int
	// ownJSON is the manifest a merge=false export wrote: the build's own
	// records, for timing the merge's computation alone.
	ownJSON []byte
	compute *mergeCompute
}

// mergeCompute is the merge's computation alone, in the bench's process,
// medians of mergeComputeReps: what the exporter does with the bytes read
// (decode, sanitise), the merge, the check of its result and its encoding.
type mergeCompute struct {
	decode, merge, encode time.Duration
}

const mergeComputeReps = 5

// mergeHeads is the HEADs in flight of the store-alone row: what the
// exporter's merge uses (backend's statParallelism, above the default
// upload_parallelism).
const mergeHeads = 16

// measureMerge runs the merge10k workload on one daemon of ours.
func (b *bench) measureMerge(ctx context.Context, wl *workload) error {
	progressf("%s: starting our daemon", wl.name)
	d, err := b.startDaemon(ctx, ours, wl.name+"-"+ours)
	if err != nil {
		return err
	}
	defer d.stop()
	progressf("%s: build", wl.name)
	if _, err := b.build(ctx, d, wl); err != nil {
		return err
	}
	progressf("%s: first export (compresses the layers)", wl.name)
	if _, err := b.build(ctx, d, wl, b.exportTo(wl.name+"-setup/")...); err != nil {
		return err
	}

	st, err := b.store(ctx, mergePrefix)
	if err != nil {
		return err
	}
	start := time.Now()
	progressf("%s: seeding %d records on %d blobs of %d bytes", wl.name, mergeSeedRecords, mergeSeedRecords, mergeSeedBlob)
	seed, err := seedMerge(ctx, st)
	if err != nil {
		return err
	}
	mr := &mergeResult{wl: wl, seedBytes: len(seed.json), seedLayers: mergeSeedRecords, seedTime: time.Since(start)}
	b.res.merge = mr
	progressf("%s: seeded in %.1fs (manifest %s)", wl.name, mr.seedTime.Seconds(), mibString(int64(len(seed.json))))

	traces := 0
	export := func(merge bool) (buildResult, error) {
		if err := st.Put(ctx, st.Layout().ManifestKey(mergeName), store.BytesBody(seed.json)); err != nil {
			return buildResult{}, fmt.Errorf("re-seed manifest: %w", err)
		}
		attrs := fmt.Sprintf("%s,name=%s,mode=max,merge=%t", b.cacheAttrs(mergePrefix), mergeName, merge)
		traces++
		wait := d.traceFor(ctx, 10, filepath.Join(b.work, fmt.Sprintf("%s-merge-%t-%d.trace", wl.name, merge, traces)))
		r, err := b.build(ctx, d, wl, "--export-cache", attrs)
		wait()
		if err != nil {
			return r, err
		}
		if !merge {
			if mr.ownJSON == nil {
				if mr.ownJSON, err = store.ReadAll(ctx, st, st.Layout().ManifestKey(mergeName), manifest.DefaultMaxSize); err != nil {
					return r, fmt.Errorf("read the merge=false manifest: %w", err)
				}
			}
			return r, nil
		}
		n, err := manifestRecords(ctx, st)
		if err != nil {
			return r, err
		}
		if n < mergeSeedRecords {
			return r, fmt.Errorf("merge=true export wrote %d records, fewer than the %d seeded: the merge dropped other writers' records", n, mergeSeedRecords)
		}
		mr.records = append(mr.records, n)
		return r, nil
	}
	// Untimed: uploads our blobs, so the warm exports find them.
	if _, err := export(false); err != nil {
		return err
	}
	modes := func(rep int) []bool {
		if rep%2 == 0 {
			return []bool{false, true}
		}
		return []bool{true, false}
	}
	for rep := range b.reps {
		for _, merge := range modes(rep) {
			r, err := export(merge)
			if err != nil {
				return err
			}
			phase := phaseMergeWarmOff
			if merge {
				phase = phaseMergeWarmOn
			}
			b.res.add(wl.name, phase, ours, r)
			progressf("%s: %s %d: export %.2fs (backend %.2fs)", wl.name, phase, rep+1, r.export.Seconds(), r.send.Seconds())
		}
	}
	for rep := range b.reps {
		for _, merge := range modes(rep) {
			if err := deleteOwnBlobs(ctx, st, seed.blobs); err != nil {
				return err
			}
			r, err := export(merge)
			if err != nil {
				return err
			}
			phase := phaseMergeColdOff
			if merge {
				phase = phaseMergeColdOn
			}
			b.res.add(wl.name, phase, ours, r)
			progressf("%s: %s %d: export %.2fs (backend %.2fs)", wl.name, phase, rep+1, r.export.Seconds(), r.send.Seconds())
		}
	}
	if mr.compute, err = timeMergeCompute(mr.ownJSON, seed.json); err != nil {
		return err
	}
	progressf("%s: the store alone: listing the prefix, then a HEAD of each seeded blob", wl.name)
	start = time.Now()
	err = st.List(ctx, st.Layout().BlobsDir(), func(store.Object) error { mr.listed++; return nil })
	mr.listTime = time.Since(start)
	if err != nil {
		return fmt.Errorf("list the prefix: %w", err)
	}
	start = time.Now()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(mergeHeads)
	for key := range seed.blobs {
		eg.Go(func() error {
			_, err := st.Stat(ectx, key)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return fmt.Errorf("HEAD the seeded blobs: %w", err)
	}
	mr.headTime = time.Since(start)
	progressf("%s: list %d objects %.2fs, %d HEADs %.2fs", wl.name, mr.listed, mr.listTime.Seconds(), len(seed.blobs), mr.headTime.Seconds())
	mr.environment = b.sectionEnvironment(ctx, wl)
	return nil
}

// seedMerge puts the seed's blobs and manifest under st's prefix.
func seedMerge(ctx context.Context, st *store.S3) (*mergeSeed, error) {
	var cfg cacheimporttypes.CacheConfig
	// Recent, so that merge_keep (168h by default) keeps every result.
	created := time.Now().UTC().Add(-time.Hour)
	seed := &mergeSeed{blobs: map[string]bool{}}
	blobs := make([][]byte, 0, mergeSeedRecords)
	for w := range mergeSeedWriters {
		for i := range mergeSeedChain {
			data := make([]byte, mergeSeedBlob)
			_, _ = rand.Read(data)
			blobs = append(blobs, data)
			dgst := digest.FromBytes(data)
			seed.blobs[st.Layout().BlobKey(dgst.String())] = true
			parent := -1
			if i > 0 {
				parent = len(cfg.Layers) - 1
			}
			cfg.Layers = append(cfg.Layers, cacheimporttypes.CacheLayer{
				Blob:        dgst,
				ParentIndex: parent,
				Annotations: &cacheimporttypes.LayerAnnotations{
					MediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
					DiffID:    digest.FromString(fmt.Sprintf("diff of %s", dgst)),
					Size:      mergeSeedBlob,
					CreatedAt: created,
				},
			})
			rec := cacheimporttypes.CacheRecord{
				Digest:  digest.FromString(fmt.Sprintf("writer %d step %d %s", w, i, dgst)),
				Results: []cacheimporttypes.CacheResult{{LayerIndex: len(cfg.Layers) - 1, CreatedAt: created}},
			}
			if i > 0 {
				rec.Inputs = [][]cacheimporttypes.CacheInput{{{LinkIndex: len(cfg.Records) - 1}}}
			}
			cfg.Records = append(cfg.Records, rec)
		}
	}
	// The seed must be what an import accepts as it is, or the merge
	// would drop records for reasons of its own.
	if _, problems, err := manifest.Sanitize(cfg); err != nil || len(problems) > 0 {
		return nil, fmt.Errorf("seed manifest is not clean: %v %v", err, problems)
	}
	dt, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("marshal seed manifest: %w", err)
	}
	seed.json = dt
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(32)
	for _, data := range blobs {
		eg.Go(func() error {
			body := store.BytesBody(data)
			body.Digest = digest.FromBytes(data).String()
			return st.Put(ectx, st.Layout().BlobKey(body.Digest), body)
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, fmt.Errorf("put seed blobs: %w", err)
	}
	return seed, nil
}

// timeMergeCompute times the exporter's work on the manifests' bytes, as
// backend's manifestWriter does it (read, merge), without the bucket.
func timeMergeCompute(ownJSON, seedJSON []byte) (*mergeCompute, error) {
	var own cacheimporttypes.CacheConfig
	if err := manifest.Decode(ownJSON, &own); err != nil {
		return nil, fmt.Errorf("decode own manifest: %w", err)
	}
	var decodes, merges, encodes []time.Duration
	for range mergeComputeReps {
		start := time.Now()
		var existing cacheimporttypes.CacheConfig
		if err := manifest.Decode(seedJSON, &existing); err != nil {
			return nil, fmt.Errorf("decode seed: %w", err)
		}
		existing, _, err := manifest.Sanitize(existing)
		if err != nil {
			return nil, fmt.Errorf("sanitize seed: %w", err)
		}
		decodes = append(decodes, time.Since(start))
		start = time.Now()
		merged, _, err := manifest.Merge(own, existing, manifest.MergeOptions{
			Keep: spec.DefaultMergeKeep, Now: time.Now(), Missing: map[digest.Digest]bool{},
			Limits: manifest.Limits{MaxLayers: manifest.MaxLayers, MaxRecords: manifest.MaxRecords, MaxBytes: manifest.DefaultMaxSize},
		})
		if err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		if merged, _, err = manifest.Sanitize(merged); err != nil {
			return nil, fmt.Errorf("sanitize merged: %w", err)
		}
		merges = append(merges, time.Since(start))
		start = time.Now()
		if _, err := manifest.Encode(&merged); err != nil {
			return nil, fmt.Errorf("marshal merged: %w", err)
		}
		encodes = append(encodes, time.Since(start))
	}
	med := func(ds []time.Duration) time.Duration { return time.Duration(medianSeconds(ds) * float64(time.Second)) }
	return &mergeCompute{decode: med(decodes), merge: med(merges), encode: med(encodes)}, nil
}

// manifestRecords is the number of records of the manifest under mergeName.
func manifestRecords(ctx context.Context, st *store.S3) (int, error) {
	dt, err := store.ReadAll(ctx, st, st.Layout().ManifestKey(mergeName), manifest.DefaultMaxSize)
	if err != nil {
		return 0, fmt.Errorf("read merged manifest: %w", err)
	}
	var cfg cacheimporttypes.CacheConfig
	if err := manifest.Decode(dt, &cfg); err != nil {
		return 0, fmt.Errorf("decode merged manifest: %w", err)
	}
	return len(cfg.Records), nil
}

// deleteOwnBlobs deletes the blobs under st's prefix that the seed did not
// put: what our exports uploaded.
func deleteOwnBlobs(ctx context.Context, st *store.S3, seeded map[string]bool) error {
	var keys []string
	err := st.List(ctx, st.Layout().BlobsDir(), func(o store.Object) error {
		if !seeded[o.Key] {
			keys = append(keys, o.Key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list blobs to delete: %w", err)
	}
	if len(keys) == 0 {
		return errors.New("no blobs of ours to delete before a cold export")
	}
	if err := st.Delete(ctx, keys); err != nil {
		return fmt.Errorf("delete our blobs: %w", err)
	}
	return nil
}

// markdown is merge10k's section of the results.
func (r *results) mergeMarkdown() string {
	mr := r.merge
	if mr == nil {
		return ""
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "## merge10k: merge=true into %d records of other writers (issue 18)\n\n", mergeSeedRecords)
	sb.WriteString("Upstream BuildKit has no merge: both columns are **our daemon**, the ratio is merge=true / merge=false " +
		"of the same build exporting to the same name (the paired median over the repetitions; who goes first alternates). " +
		"Before each export the name's manifest is put back to the seed: ")
	fmt.Fprintf(&sb, "%d chains of %d steps (%d records, each with one result on a layer of its own, %d layers, %s of JSON), "+
		"every layer a %d-byte blob present in the same prefix, results created an hour before, so merge_keep keeps them all. ",
		mergeSeedWriters, mergeSeedChain, mergeSeedRecords, mr.seedLayers, mibString(int64(mr.seedBytes)), mergeSeedBlob)
	sb.WriteString("Warm: every blob of the build already in the bucket; cold: the build's own blobs deleted before the export " +
		"(the seed's stay). The merge=false export overwrites the seed; each merge=true one was checked to have written " +
		"a manifest holding the seed's records and its own")
	if len(mr.records) > 0 {
		fmt.Fprintf(&sb, " (%d records each time)", mr.records[0])
	}
	sb.WriteString(".\n\n")
	for _, e := range mr.environment {
		sb.WriteString("- " + e + "\n")
	}
	fmt.Fprintf(&sb, "- seeding the blobs and manifest took %s (not measured below)\n\n", mr.seedTime.Round(100*time.Millisecond))
	sb.WriteString("| phase | merge=false (s) | merge=true (s) | merge=true/merge=false | target | |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---|\n")
	wl := mr.wl.name
	row := func(label, off, on string, field func(buildResult) time.Duration, targeted bool) {
		o, u := r.samples[sampleKey{wl, off, ours}], r.samples[sampleKey{wl, on, ours}]
		if len(o) == 0 || len(u) == 0 {
			return
		}
		var offs, ons []time.Duration
		var ratios []float64
		for i := range min(len(o), len(u)) {
			offs, ons = append(offs, field(o[i])), append(ons, field(u[i]))
			if field(o[i]) > 0 {
				ratios = append(ratios, field(u[i]).Seconds()/field(o[i]).Seconds())
			}
		}
		ratio := medianFloat(ratios)
		target, check := "", ""
		if targeted {
			target, check = fmt.Sprintf("≤ %.1f", mergeTarget), verdict(ratio <= mergeTarget)
		}
		fmt.Fprintf(&sb, "| %s | %.2f | %.2f | %.2f | %s | %s |\n", label, medianSeconds(offs), medianSeconds(ons), ratio, target, check)
	}
	row("warm export: export phase", phaseMergeWarmOff, phaseMergeWarmOn, exportTime, true)
	row("warm export: backend", phaseMergeWarmOff, phaseMergeWarmOn, sendTime, false)
	row("warm export: wall", phaseMergeWarmOff, phaseMergeWarmOn, wallTime, false)
	row("cold export: export phase", phaseMergeColdOff, phaseMergeColdOn, exportTime, true)
	row("cold export: backend", phaseMergeColdOff, phaseMergeColdOn, sendTime, false)
	row("cold export: wall", phaseMergeColdOff, phaseMergeColdOn, wallTime, false)
	if mr.listTime > 0 {
		fmt.Fprintf(&sb, "\nThe store alone on the same prefix, after the exports: one listing of its blobs (%d objects) took %.2f s; "+
			"a HEAD of each of the %d seeded blobs, %d in flight (as the exporter's merge checks them), %.2f s.\n",
			mr.listed, mr.listTime.Seconds(), mr.seedLayers, mergeHeads, mr.headTime.Seconds())
	}
	if c := mr.compute; c != nil {
		fmt.Fprintf(&sb, "The merge's computation alone, in the bench's process (median of %d): decoding and sanitising the seed %.0f ms, "+
			"merging the build's own manifest into it and sanitising the result %.0f ms, encoding it %.0f ms.\n",
			mergeComputeReps, c.decode.Seconds()*1000, c.merge.Seconds()*1000, c.encode.Seconds()*1000)
	}
	return sb.String()
}
