package backend

import (
	"context"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/solver"
	digest "github.com/opencontainers/go-digest"
)

// infoMemo remembers, for one export, the blobs the content store has
// shown it holds. BuildKit's CacheChains.Marshal asks Info of every blob of
// a chain, again for each ancestor chain and again for each record: with n
// layers of mode=max that is about n³/6 content-store lookups (a second of
// the export at 60 layers) for n answers. Every result's provider asks the
// same content store, so one that has answered for a blob answers for all;
// a failure is not remembered, so a provider that cannot serve a blob
// still says so.
type infoMemo struct {
	mu    sync.Mutex
	infos map[digest.Digest]content.Info
}

// wrap gives the results' providers the memo. The results are copied, not
// changed in place.
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
		remote.Provider = &memoProvider{InfoReaderProvider: remote.Provider, memo: m}
		out[i].Result = &remote
	}
	return out
}

// memoProvider is a provider whose Info consults the export's memo; the
// rest it passes through.
type memoProvider struct {
	content.InfoReaderProvider
	memo *infoMemo
}

func (p *memoProvider) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	p.memo.mu.Lock()
	info, ok := p.memo.infos[dgst]
	p.memo.mu.Unlock()
	if ok {
		return info, nil
	}
	info, err := p.InfoReaderProvider.Info(ctx, dgst)
	if err != nil {
		return info, err
	}
	p.memo.mu.Lock()
	if p.memo.infos == nil {
		p.memo.infos = map[digest.Digest]content.Info{}
	}
	p.memo.infos[dgst] = info
	p.memo.mu.Unlock()
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
