package cli_test

import (
	"os"
	"testing"

	"github.com/s3cache/s3cache/internal/testutil/miniotest"
)

// TestMain stops the package's MinIO after the tests. One per package:
// tests of other commands that need MinIO use it too.
func TestMain(m *testing.M) { os.Exit(miniotest.Main(m)) }
