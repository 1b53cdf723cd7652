package backend

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/moby/buildkit/solver"
	digest "github.com/opencontainers/go-digest"
)

// fakeProvider answers Info from a set of digests and counts the calls.
type fakeProvider struct {
	content.InfoReaderProvider
	has   map[digest.Digest]bool
	calls int
}

func (f *fakeProvider) Info(_ context.Context, dgst digest.Digest) (content.Info, error) {
	f.calls++
	if f.has[dgst] {
		return content.Info{Digest: dgst}, nil
	}
	return content.Info{}, errors.New("not found")
}

// Each provider's answers are its own: one provider holding a blob never
// answers for another that lacks it (BuildKit would drop that result), and
// a failure is asked again.
func TestInfoMemoRemembersEachProvidersSuccess(t *testing.T) {
	ctx := context.Background()
	a, b := digest.FromString("a"), digest.FromString("b")
	p1 := &fakeProvider{has: map[digest.Digest]bool{a: true}}
	p2 := &fakeProvider{has: map[digest.Digest]bool{b: true}}
	memo := &infoMemo{}
	res := memo.wrap([]solver.CacheExportResult{{Result: &solver.Remote{Provider: p1}}, {Result: &solver.Remote{Provider: p2}}})
	w1, w2 := res[0].Result.Provider, res[1].Result.Provider
	for range 3 {
		if _, err := w1.Info(ctx, a); err != nil {
			t.Fatal(err)
		}
		if _, err := w2.Info(ctx, a); err == nil {
			t.Fatal("a blob the second provider lacks was reported present because the first has it")
		}
		if _, err := w1.Info(ctx, b); err == nil {
			t.Fatal("a blob the first provider lacks was reported present")
		}
		if _, err := w2.Info(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if p1.calls != 1+3 || p2.calls != 3+1 {
		t.Fatalf("provider calls %d and %d, want 4 each (one success remembered, three failures asked)", p1.calls, p2.calls)
	}
	if again := memo.wrap(res); again[0].Result.Provider != w1 {
		t.Fatal("a wrapped provider was wrapped again")
	}
}
