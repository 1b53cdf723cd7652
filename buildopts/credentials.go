package buildopts

import (
	"context"
	"fmt"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

// DefaultAWSCredentials resolves the client's credentials through the AWS
// SDK default chain: environment, shared config and credentials files,
// profiles, web identity, container and instance roles.
func DefaultAWSCredentials(ctx context.Context) (Credentials, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return Credentials{}, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Credentials == nil {
		return Credentials{}, nil
	}
	c, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return Credentials{}, fmt.Errorf("retrieve AWS credentials: %w", err)
	}
	return Credentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken}, nil
}
