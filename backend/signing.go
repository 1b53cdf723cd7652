package backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/s3cache/s3cache/signature"
	"github.com/s3cache/s3cache/spec"
	"github.com/s3cache/s3cache/store"
)

// manifestBody is the body of the manifest dt written under name: with
// the spec's signing_key, its signature rides in the same PUT as S3 user
// metadata, so bytes and signature are stored together or not at all.
func manifestBody(cfg spec.Config, name string, dt []byte) (store.Body, error) {
	body := store.BytesBody(dt)
	if cfg.SigningKey.IsZero() {
		return body, nil
	}
	sig, err := signature.Sign(cfg.SigningKey, name, dt)
	if err != nil {
		return store.Body{}, fmt.Errorf("sign manifest %s: %w", name, err)
	}
	body.Metadata = map[string]string{signature.MetadataKey: sig}
	return body, nil
}

// readVerified reads the manifest under name with its metadata and checks
// its signature against keys, which must not be empty. The error of a
// manifest that is there but not signed for name by one of keys says why,
// and matches errNotTrusted.
func readVerified(ctx context.Context, st store.Store, layout store.Layout, name string, limit int64, keys []signature.PublicKey) ([]byte, signature.PublicKey, error) {
	dt, meta, err := store.ReadAllMetadata(ctx, st, layout.ManifestKey(name), limit)
	if err != nil {
		return nil, signature.PublicKey{}, err
	}
	k, err := signature.Verify(keys, name, dt, meta[signature.MetadataKey])
	if err != nil {
		return nil, signature.PublicKey{}, fmt.Errorf("%w: %w", errNotTrusted, err)
	}
	return dt, k, nil
}

// errNotTrusted marks a manifest refused by verify_key.
var errNotTrusted = errors.New("not signed for this name by a verify_key")

// verifyExisting checks that dt, the manifest under name as a merge read
// it, was signed for name by the export's own signing key: untrusted is
// why not, err a failure to find out. The metadata comes from a second
// GET (the first kept the ETag): if the object changed in between, its
// signature does not match dt and the merge replaces it, which is safe;
// the conditional write then finds the change and the merge runs again.
func (w *manifestWriter) verifyExisting(ctx context.Context, name string, dt []byte) (untrusted, err error) {
	body, meta, err := w.store.GetMetadata(ctx, w.layout.ManifestKey(name))
	switch {
	case errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrBucketNotFound):
		return errors.New("gone since it was read"), nil
	case err != nil:
		return nil, fmt.Errorf("read the signature of manifest %s to merge into: %w", name, err)
	}
	_ = body.Close()
	if _, err := signature.Verify([]signature.PublicKey{w.cfg.SigningKey.Public()}, name, dt, meta[signature.MetadataKey]); err != nil {
		return fmt.Errorf("not signed by this export's signing_key (%w)", err), nil
	}
	return nil, nil
}
