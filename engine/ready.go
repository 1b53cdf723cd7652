package engine

import (
	"context"
	"errors"
	"fmt"

	controlapi "github.com/moby/buildkit/api/services/control"
)

// Ready reports whether the engine answers a worker list with at least
// one worker, as buildctl's `debug workers` asks: what a readiness probe
// needs before it sends builds here.
func (e *Engine) Ready(ctx context.Context) error {
	if e.Controller == nil {
		return errors.New("engine has no controller")
	}
	resp, err := e.Controller.ListWorkers(ctx, &controlapi.ListWorkersRequest{})
	if err != nil {
		return fmt.Errorf("list workers: %w", err)
	}
	if len(resp.Record) == 0 {
		return errors.New("no workers")
	}
	return nil
}
