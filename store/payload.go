package store

import (
	"context"
	"strings"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
)

// unsignedPayload is SigV4's payload hash for a body the signature does
// not cover.
const unsignedPayload = "UNSIGNED-PAYLOAD"

// payloadHash is the SigV4 payload hash for a PUT of the bytes [off,
// off+n) of an object of size bytes and digest (see Body.Digest), or "" to
// let the SDK choose.
func payloadHash(digest string, off, n, size int64) string {
	hexDigits, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexDigits) != 64 || !isLowerHex(hexDigits) {
		return ""
	}
	if off == 0 && n == size {
		return hexDigits
	}
	return unsignedPayload
}

func isLowerHex(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// withPayloadHash signs a request with hash as its payload hash instead of
// one computed from the body; "" changes nothing.
func withPayloadHash(hash string) []func(*s3.Options) {
	if hash == "" {
		return nil
	}
	return []func(*s3.Options){func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			// Ahead of the SDK's step that hashes the body, which keeps a hash
			// already set.
			return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("s3cachePayloadHash",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, hash), in)
				}), "ComputePayloadHash", middleware.Before)
		})
	}}
}
