package store

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"

	"github.com/s3cache/s3cache/spec"
)

// S3 is a Store on one S3 (or S3-compatible) bucket.
type S3 struct {
	client *s3.Client
	bucket string
	layout Layout
	opts   Options
}

var _ Store = (*S3)(nil)

// New builds the client for cfg. It makes no request: a missing bucket or bad
// credentials show up as errors of the first operation. The prefixes of cfg
// are used as they are (the spec parser applies their defaults).
func New(ctx context.Context, cfg spec.Config, opts Options) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3 store: bucket is required")
	}
	if cfg.AccessKeyID != "" && cfg.SecretAccessKey == "" {
		return nil, errors.New("s3 store: access_key_id is set without secret_access_key")
	}
	opts = opts.withDefaults()

	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		// Checksums only where S3 demands them (DeleteObjects): MinIO, GCS and
		// R2 reject or mis-handle the trailing checksums the SDK adds otherwise.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if opts.HTTPClient == nil {
		loadOpts = append(loadOpts, config.WithHTTPClient(httpClient(cfg, opts)))
	}
	if cfg.Anonymous && cfg.AccessKeyID != "" {
		return nil, errors.New("s3 store: anonymous is set together with access_key_id")
	}
	if cfg.AccessKeyID != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	if cfg.RetryMode != "" {
		mode, err := aws.ParseRetryMode(cfg.RetryMode)
		if err != nil {
			return nil, fmt.Errorf("s3 store: retry_mode: %w", err)
		}
		loadOpts = append(loadOpts, config.WithRetryMode(mode))
	}
	if cfg.RetryMaxAttempts > 0 {
		loadOpts = append(loadOpts, config.WithRetryMaxAttempts(cfg.RetryMaxAttempts))
	}
	var (
		awsCfg aws.Config
		err    error
	)
	if cfg.Anonymous {
		awsCfg, err = anonymousConfig(loadOpts)
	} else {
		awsCfg, err = config.LoadDefaultConfig(ctx, loadOpts...)
	}
	if err != nil {
		return nil, fmt.Errorf("s3 store: load AWS config: %w", err)
	}

	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if opts.HTTPClient != nil {
			// Set here, not in LoadDefaultConfig, which insists on adding
			// AWS_CA_BUNDLE to the client's transport.
			o.HTTPClient = opts.HTTPClient
		}
		if cfg.EndpointURL != "" {
			o.BaseEndpoint = aws.String(cfg.EndpointURL)
		}
		o.UsePathStyle = cfg.UsePathStyle
		o.APIOptions = append(o.APIOptions, addRequestMetrics)
		if opts.RetryMaxBackoff > 0 {
			o.Retryer = retry.AddWithMaxBackoffDelay(o.Retryer, opts.RetryMaxBackoff)
		}
		if cfg.DisableAcceptEncoding {
			// GCS appends "gzip(gfe)" to the Accept-Encoding the SDK signed
			// as "identity" and fails the signature; send no such header.
			o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
				_, _ = st.Finalize.Remove("DisableAcceptEncodingGzip")
				return nil
			})
		}
	})
	return &S3{
		client: client,
		bucket: cfg.Bucket,
		layout: Layout{Prefix: cfg.Prefix, BlobsPrefix: cfg.BlobsPrefix, ManifestsPrefix: cfg.ManifestsPrefix},
		opts:   opts,
	}, nil
}

// anonymousConfig is the AWS config of loadOpts for unsigned requests,
// made without reading anything that holds or finds credentials: not the
// environment, not the shared config and credentials files (where a
// profile named by $AWS_PROFILE that they lack would even be an error),
// no role or instance metadata endpoint.
func anonymousConfig(loadOpts []func(*config.LoadOptions) error) (aws.Config, error) {
	var lo config.LoadOptions
	for _, o := range loadOpts {
		if err := o(&lo); err != nil {
			return aws.Config{}, err
		}
	}
	c := aws.Config{
		Region:                     lo.Region,
		Credentials:                aws.AnonymousCredentials{},
		RequestChecksumCalculation: lo.RequestChecksumCalculation,
		ResponseChecksumValidation: lo.ResponseChecksumValidation,
		RetryMode:                  lo.RetryMode,
		RetryMaxAttempts:           lo.RetryMaxAttempts,
		Logger:                     lo.Logger,
	}
	if lo.HTTPClient != nil {
		c.HTTPClient = lo.HTTPClient
	}
	return c, nil
}

// sharedClients are the HTTP clients of every store in the process, by
// idle pool size: the store of each export and import reuses the
// connections (and TLS sessions) of those before it instead of dialing anew.
var (
	sharedClientsMu sync.Mutex
	sharedClients   = map[int]*awshttp.BuildableClient{}
)

// httpClient's idle pool holds a connection for every request the uploads
// can have in flight, so they are reused rather than redialed.
func httpClient(cfg spec.Config, opts Options) *awshttp.BuildableClient {
	parallel := cfg.UploadParallelism
	if parallel <= 0 {
		parallel = spec.DefaultUploadParallelism
	}
	conns := max(2*parallel*opts.PartConcurrency, 16)
	sharedClientsMu.Lock()
	defer sharedClientsMu.Unlock()
	if c, ok := sharedClients[conns]; ok {
		return c
	}
	c := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = max(tr.MaxIdleConns, conns)
		tr.MaxIdleConnsPerHost = conns
	})
	sharedClients[conns] = c
	return c
}

// Layout is the key layout of the configured prefixes.
func (s *S3) Layout() Layout { return s.layout }

// Bucket is the bucket name.
func (s *S3) Bucket() string { return s.bucket }
