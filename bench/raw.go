package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// rawParallelism is the blobs in flight of the raw PUT and GET: the
// default upload_parallelism both exporters use.
const rawParallelism = spec.DefaultUploadParallelism

// blobSizes lists the sizes of the blobs under prefix's blobs/.
func (b *bench) blobSizes(ctx context.Context, prefix string) ([]int64, error) {
	st, err := b.store(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var sizes []int64
	err = st.List(ctx, st.Layout().BlobsDir(), func(o store.Object) error {
		sizes = append(sizes, o.Size)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blobs of %s: %w", prefix, err)
	}
	return sizes, nil
}

// rawBlob is a file of random bytes and its digest.
type rawBlob struct {
	path, digest string
}

// rawFiles writes one file of random bytes per size, the raw transfers' source.
func rawFiles(dir string, sizes []int64) ([]rawBlob, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("raw data dir: %w", err)
	}
	blobs := make([]rawBlob, len(sizes))
	for i, size := range sizes {
		path := filepath.Join(dir, fmt.Sprintf("blob%d", i))
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("raw data: %w", err)
		}
		h := sha256.New()
		_, err = io.CopyN(io.MultiWriter(f, h), rand.Reader, size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("raw data %s: %w", path, err)
		}
		blobs[i] = rawBlob{path: path, digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}
	}
	return blobs, nil
}

// rawPutGet uploads the blobs under prefix with the store (its default
// tuning and signing, no existence checks, no content store)
// rawParallelism at a time, then reads them all back: the bucket's own
// speed for these bytes.
func (b *bench) rawPutGet(ctx context.Context, prefix string, blobs []rawBlob) (put, get time.Duration, err error) {
	st, err := b.store(ctx, prefix)
	if err != nil {
		return 0, 0, err
	}
	keys := make([]string, len(blobs))
	for i, blob := range blobs {
		keys[i] = st.Layout().BlobKey(blob.digest)
	}
	start := time.Now()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(rawParallelism)
	for i, blob := range blobs {
		eg.Go(func() error {
			f, err := os.Open(blob.path)
			if err != nil {
				return fmt.Errorf("raw put: %w", err)
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return fmt.Errorf("raw put: %w", err)
			}
			body := store.FileBody(f, fi.Size())
			body.Digest = blob.digest
			return st.Put(ectx, keys[i], body)
		})
	}
	if err := eg.Wait(); err != nil {
		return 0, 0, fmt.Errorf("raw put: %w", err)
	}
	put = time.Since(start)

	start = time.Now()
	eg, ectx = errgroup.WithContext(ctx)
	eg.SetLimit(rawParallelism)
	for _, key := range keys {
		eg.Go(func() error {
			body, err := st.Get(ectx, key, 0, -1)
			if err != nil {
				return err
			}
			defer body.Close()
			if _, err := io.Copy(io.Discard, body); err != nil {
				return fmt.Errorf("raw get %s: %w", key, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return 0, 0, fmt.Errorf("raw get: %w", err)
	}
	get = time.Since(start)
	return put, get, nil
}

// putUnrelated fills prefix's blobs/ with n small objects named like
// blobs, which no manifest names: a bucket shared by many projects.
func (b *bench) putUnrelated(ctx context.Context, prefix string, n int) error {
	st, err := b.store(ctx, prefix)
	if err != nil {
		return err
	}
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(32)
	for range n {
		eg.Go(func() error {
			var body [512]byte
			_, _ = rand.Read(body[:])
			key := st.Layout().BlobKey(fmt.Sprintf("sha256:%x", body[:32]))
			return st.Put(ectx, key, store.NewBody(readerAt(body[:]), int64(len(body))))
		})
	}
	if err := eg.Wait(); err != nil {
		return fmt.Errorf("put unrelated blobs: %w", err)
	}
	return nil
}

type readerAt []byte

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r)) {
		return 0, io.EOF
	}
	n := copy(p, r[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// store opens the bench bucket with prefix.
func (b *bench) store(ctx context.Context, prefix string) (*store.S3, error) {
	cfg := spec.Config{
		Region:            b.region,
		Bucket:            b.bucket,
		EndpointURL:       b.endpoint,
		UsePathStyle:      true,
		Prefix:            prefix,
		BlobsPrefix:       spec.DefaultBlobsPrefix,
		ManifestsPrefix:   spec.DefaultManifestsPrefix,
		UploadParallelism: spec.DefaultUploadParallelism,
		AccessKeyID:       b.accessKey,
		SecretAccessKey:   b.secretKey,
	}
	st, err := store.New(ctx, cfg, store.Options{})
	if err != nil {
		return nil, fmt.Errorf("open bench bucket: %w", err)
	}
	return st, nil
}
