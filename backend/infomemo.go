package backend

import (
	"context"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/solver"
	digest "github.com/opencontainers/go-digest"
)

// memoizeInfo gives each result's provider a memory of its Info answers.
// BuildKit's CacheChains.Marshal asks Info of every blob of a chain, again
// for each ancestor chain and again for each record, all through the
// chain's one provider: with n layers of mode=max that is about n³/6
// content-store lookups (a second of the export at 60 layers), where each
// provider needs only its chain's n answers. The results are copied, not
// changed in place.
func memoizeInfo(results []solver.CacheExportResult) []solver.CacheExportResult {
	out := make([]solver.CacheExportResult, len(results))
	for i, r := range results {
		out[i] = r
		if r.Result == nil || r.Result.Provider == nil {
			continue
		}
		if _, ok := r.Result.Provider.(*infoMemo); ok {
			continue
		}
		remote := *r.Result
		remote.Provider = &infoMemo{InfoReaderProvider: remote.Provider}
		out[i].Result = &remote
	}
	return out
}

// infoMemo is a provider that answers Info for a digest once; the rest it
// passes through.
type infoMemo struct {
	content.InfoReaderProvider

	mu    sync.Mutex
	infos map[digest.Digest]infoAnswer
}

type infoAnswer struct {
	info content.Info
	err  error
}

func (p *infoMemo) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	p.mu.Lock()
	a, ok := p.infos[dgst]
	p.mu.Unlock()
	if ok {
		return a.info, a.err
	}
	info, err := p.InfoReaderProvider.Info(ctx, dgst)
	if ctx.Err() != nil {
		return info, err // a cancelled lookup says nothing about the blob
	}
	p.mu.Lock()
	if p.infos == nil {
		p.infos = map[digest.Digest]infoAnswer{}
	}
	p.infos[dgst] = infoAnswer{info, err}
	p.mu.Unlock()
	return info, err
}

// Unlazy passes through to a lazy provider (BuildKit's remotes have one),
// which exporters may call to pull the blobs before reading them.
func (p *infoMemo) Unlazy(ctx context.Context) error {
	if u, ok := p.InfoReaderProvider.(interface{ Unlazy(context.Context) error }); ok {
		return u.Unlazy(ctx)
	}
	return nil
}
