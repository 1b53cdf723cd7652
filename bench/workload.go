package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// workload is a Dockerfile on the offline busybox base whose RUN steps
// each write incompressible bytes, so every step is one layer blob.
type workload struct {
	name  string
	steps int
	size  int64 // bytes each step writes
	dir   string
	desc  string // String's text, when not the RUN workload's (scale)
}

func (w *workload) String() string {
	if w.desc != "" {
		return w.name + ": " + w.desc
	}
	return fmt.Sprintf("%s: %d RUN steps x %s, mode=max", w.name, w.steps, mibString(w.size))
}

// writeContext writes the build context: busybox and the Dockerfile.
func (w *workload) writeContext(parent string) error {
	w.dir = filepath.Join(parent, "context-"+w.name)
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return fmt.Errorf("context dir: %w", err)
	}
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("read Debian's busybox-static (scripts/install-test-deps.sh installs it): %w", err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "busybox"), busybox, 0o755); err != nil {
		return fmt.Errorf("write busybox: %w", err)
	}
	var df strings.Builder
	df.WriteString("FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n")
	for i := 1; i <= w.steps; i++ {
		// head -c of /dev/urandom: the bytes neither compress nor repeat.
		fmt.Fprintf(&df, "RUN head -c %d /dev/urandom > /f%d\n", w.size, i)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		return fmt.Errorf("write Dockerfile: %w", err)
	}
	return nil
}

func mibString(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
