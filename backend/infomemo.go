package backend

import (
	"context"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/solver"
	digest "github.com/opencontainers/go-digest"
)

// infoMemo remembers, for one export, what each result's provider said it
// holds. BuildKit's CacheChains.Marshal asked a result's provider Info of
// every blob of its chain, and again for each ancestor chain: with n
// layers of mode=max that is about n³/6 content-store lookups (a second of
// the export at 60 layers). The exporter's own cacheChains asks each
// provider about each blob once a marshal, so the memo now only spares
// questions asked again across marshals. Each provider's own answers are remembered,
// never one provider's for another's: providers differ (a lazy ref's, an
// imported result's), and BuildKit drops a result whose provider lacks a
// blob even when another's has it. A failure is not remembered, so a
// provider that cannot serve a blob still says so each time, as it would
// to BuildKit.
type infoMemo struct{}

// wrap gives each result's provider a memo of its own. The results are
// copied, not changed in place.
func (m *infoMemo) wrap(results []solver.CacheExportResult) []solver.CacheExportResult {
	out := make([]solver.CacheExportResult, len(results))
	for i, r := range results {
		out[i] = r
		if r.Result == nil || r.Result.Provider == nil {
			continue
		}
		if _, ok := r.Result.Provider.(*memoProvider); ok {
			continue
		}
		remote := *r.Result
		remote.Provider = &memoProvider{InfoReaderProvider: remote.Provider}
		out[i].Result = &remote
	}
	return out
}

// memoProvider is a provider whose Info answers are remembered; the rest
// it passes through.
type memoProvider struct {
	content.InfoReaderProvider

	mu    sync.Mutex
	infos map[digest.Digest]content.Info
}

func (p *memoProvider) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	p.mu.Lock()
	info, ok := p.infos[dgst]
	p.mu.Unlock()
	if ok {
		return info, nil
	}
	info, err := p.InfoReaderProvider.Info(ctx, dgst)
	if err != nil {
		return info, err
	}
	p.mu.Lock()
	if p.infos == nil {
		p.infos = map[digest.Digest]content.Info{}
	}
	p.infos[dgst] = info
	p.mu.Unlock()
	return info, nil
}

// Unlazy passes through to a lazy provider (BuildKit's remotes have one),
// which exporters may call to pull the blobs before reading them.
func (p *memoProvider) Unlazy(ctx context.Context) error {
	if u, ok := p.InfoReaderProvider.(interface{ Unlazy(context.Context) error }); ok {
		return u.Unlazy(ctx)
	}
	return nil
}
