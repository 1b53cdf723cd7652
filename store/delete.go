package store

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DeleteError is a Delete that removed only some of its keys: Deleted are
// the keys S3 confirmed deleted before the failure (whole batches, and the
// keys of a batch it answered for that it did not report failed), so a
// caller can count what was done.
type DeleteError struct {
	Deleted []string
	Err     error
}

func (e *DeleteError) Error() string { return e.Err.Error() }
func (e *DeleteError) Unwrap() error { return e.Err }

// Delete removes keys with DeleteObjects, DeleteBatch at a time. Missing keys
// are not an error; a key S3 refuses to delete is, a *DeleteError.
func (s *S3) Delete(ctx context.Context, keys []string) error {
	var deleted []string
	for start := 0; start < len(keys); start += s.opts.DeleteBatch {
		batch := keys[start:min(start+s.opts.DeleteBatch, len(keys))]
		ids := make([]types.ObjectIdentifier, len(batch))
		for i := range batch {
			ids[i] = types.ObjectIdentifier{Key: &batch[i]}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			// Whether S3 deleted any of this batch is unknown: not counted.
			return &DeleteError{Deleted: deleted, Err: s.wrapErr("delete", batch[0], err)}
		}
		if len(out.Errors) > 0 {
			failed := make(map[string]bool, len(out.Errors))
			for _, e := range out.Errors {
				failed[aws.ToString(e.Key)] = true
			}
			for _, k := range batch {
				if !failed[k] {
					deleted = append(deleted, k)
				}
			}
			e := out.Errors[0]
			return &DeleteError{Deleted: deleted, Err: fmt.Errorf("s3 delete %s: %s: %s (%d of %d keys in the batch failed)",
				aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors), len(batch))}
		}
		deleted = append(deleted, batch...)
	}
	return nil
}
