package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Touch refreshes the object's modification time with a copy onto itself:
// CopyObject (with new metadata, since S3 refuses a copy that changes
// nothing) below CopyThreshold, else a multipart UploadPartCopy, as
// CopyObject is limited to 5 GiB. A negative size is looked up first.
func (s *S3) Touch(ctx context.Context, key string, size int64) error {
	if size < 0 {
		obj, err := s.Stat(ctx, key)
		if err != nil {
			return err
		}
		size = obj.Size
	}
	src := copySource(s.bucket, key)
	if size < s.opts.CopyThreshold {
		_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:            &s.bucket,
			Key:               &key,
			CopySource:        &src,
			Metadata:          map[string]string{"updated-at": s.opts.Now().UTC().Format(time.RFC3339Nano)},
			MetadataDirective: types.MetadataDirectiveReplace,
		})
		if err != nil {
			return s.wrapErr("touch", key, err)
		}
		return nil
	}
	err := s.multipart(ctx, key, size, s.opts.CopyPartSize, nil, func(ctx context.Context, upload *string, part int32, off, n int64) (*string, error) {
		out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket:          &s.bucket,
			Key:             &key,
			UploadId:        upload,
			PartNumber:      aws.Int32(part),
			CopySource:      &src,
			CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
		})
		if err != nil {
			return nil, err
		}
		if out.CopyPartResult == nil {
			return nil, fmt.Errorf("no CopyPartResult in response")
		}
		return out.CopyPartResult.ETag, nil
	})
	if err != nil {
		return s.wrapErr("touch", key, err)
	}
	return nil
}

// copySource is the x-amz-copy-source of bucket/key. S3 URL-decodes it, so
// each path segment is escaped; PathEscape leaves '+' alone, which some
// servers decode as a space, so it is escaped as well.
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = strings.ReplaceAll(url.PathEscape(seg), "+", "%2B")
	}
	return bucket + "/" + strings.Join(segs, "/")
}
