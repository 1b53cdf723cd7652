package cli

import (
	"context"
	"testing"
)

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"version"}, 0},
		{[]string{"build"}, 2},
		{[]string{"build", "--no-such-flag", "."}, 2},
		{[]string{"no-such-command"}, 2},
		{[]string{"ls", "type=s3,region=r"}, 1}, // a bad spec is a failure, not a usage error
		{[]string{"build", "--cache-to", "type=s3,region=r,bucket=b,mode=none", t.TempDir()}, 1},
	} {
		if got := Main(context.Background(), tc.args); got != tc.want {
			t.Errorf("s3cache %v exited %d, want %d", tc.args, got, tc.want)
		}
	}
}
