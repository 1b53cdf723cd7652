package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestBuildkitdVersionHasBuildkitdsFourFields(t *testing.T) {
	var out bytes.Buffer
	cmd := newBuildkitdCommand(&out, &out)
	cmd.SetArgs([]string{"--version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out.String())
	// buildx's docker-container driver wants four fields, the third the
	// BuildKit version (test binaries carry no module versions: the image
	// test checks the value).
	if len(f) != 4 || f[0] != "buildkitd" {
		t.Fatalf("buildkitd --version printed %q", out.String())
	}
}

func TestBuildkitdDefaultsAreBuildkitds(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		wantAddr, root string
	}{
		{nil, "[unix:///run/buildkit/buildkitd.sock]", "/var/lib/buildkit"},
		// A given --addr replaces the default, as buildkitd's does.
		{[]string{"--addr", "tcp://127.0.0.1:1234", "--root", "/srv/bk"}, "[tcp://127.0.0.1:1234]", "/srv/bk"},
	} {
		cmd := newBuildkitdCommand(&bytes.Buffer{}, &bytes.Buffer{})
		if err := cmd.ParseFlags(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := cmd.Flags().Lookup("addr").Value.String(); got != tc.wantAddr {
			t.Errorf("%v: --addr %s, want %s", tc.args, got, tc.wantAddr)
		}
		if got := cmd.Flags().Lookup("root").Value.String(); got != tc.root {
			t.Errorf("%v: --root %s, want %s", tc.args, got, tc.root)
		}
	}
}
