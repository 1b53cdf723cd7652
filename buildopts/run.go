package buildopts

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/moby/buildkit/client"
	"github.com/moby/buildkit/util/progress/progressui"
	"golang.org/x/sync/errgroup"
)

// Result summarises a finished build.
type Result struct {
	Duration time.Duration
	// Steps are the build's vertices in completion order, with whether each
	// came from cache.
	Steps    []Step
	Response map[string]string
}

// Step is one vertex of the build.
type Step struct {
	Name   string
	Cached bool
}

// CachedSteps counts the steps that were cache hits.
func (r Result) CachedSteps() int {
	n := 0
	for _, s := range r.Steps {
		if s.Cached {
			n++
		}
	}
	return n
}

// Request is a validated build, ready to run.
type Request struct {
	solve    client.SolveOpt
	progress progressui.DisplayMode
}

// Prepare validates every option and builds the solve request: an invalid
// option is refused before any engine starts.
func Prepare(ctx context.Context, o Options) (*Request, error) {
	so, err := o.solveOpt(ctx)
	if err != nil {
		return nil, err
	}
	mode := progressui.AutoMode
	switch o.Progress {
	case "", "auto":
	case "plain", "tty", "rawjson", "quiet":
		mode = progressui.DisplayMode(o.Progress)
	default:
		return nil, fmt.Errorf("--progress %q: use auto, plain, tty, rawjson or quiet", o.Progress)
	}
	return &Request{solve: so, progress: mode}, nil
}

// Run solves a prepared build on c, drawing progress on progressOut.
func Run(ctx context.Context, c *client.Client, req *Request, progressOut io.Writer) (Result, error) {
	start := time.Now()
	so := req.solve
	display, err := progressui.NewDisplay(progressOut, req.progress)
	if err != nil {
		return Result{}, fmt.Errorf("progress display: %w", err)
	}

	statusCh := make(chan *client.SolveStatus)
	displayCh := make(chan *client.SolveStatus)
	var res Result
	var resp *client.SolveResponse
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error {
		var err error
		resp, err = c.Solve(ctx, nil, so, statusCh)
		return err
	})
	eg.Go(func() error {
		// Tee: the display gets every status; we note which steps were cached.
		defer close(displayCh)
		seen := map[string]int{}
		for st := range statusCh {
			for _, v := range st.Vertexes {
				if v.Completed == nil {
					continue
				}
				if i, ok := seen[v.Digest.String()]; ok {
					res.Steps[i].Cached = res.Steps[i].Cached || v.Cached
					continue
				}
				seen[v.Digest.String()] = len(res.Steps)
				res.Steps = append(res.Steps, Step{Name: v.Name, Cached: v.Cached})
			}
			displayCh <- st
		}
		return nil
	})
	eg.Go(func() error {
		_, err := display.UpdateFrom(context.WithoutCancel(ctx), displayCh)
		return err
	})
	if err := eg.Wait(); err != nil {
		return res, err
	}
	res.Duration = time.Since(start)
	if resp != nil {
		res.Response = resp.ExporterResponse
	}
	return res, nil
}
