package engine

import (
	"context"
	"encoding/json"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"
)

const solveMethod = "/moby.buildkit.v1.Control/Solve"

// sealSecrets keeps `type=s3` secrets out of what BuildKit stores: a Solve
// request's cache entries, and the copy of the cache imports the client puts
// in the frontend's attributes (which the build history record keeps), get
// their secret values replaced by references into the vault for as long as
// the build runs.
func (e *Engine) sealSecrets(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	sr, ok := req.(*controlapi.SolveRequest)
	if !ok || info.FullMethod != solveMethod {
		return handler(ctx, req)
	}
	var refs []string
	if sr.Cache != nil {
		for _, list := range [][]*controlapi.CacheOptionsEntry{sr.Cache.Exports, sr.Cache.Imports} {
			for _, ent := range list {
				if ent != nil && ent.Type == "s3" && ent.Attrs != nil {
					refs = append(refs, e.vault.Seal(ent.Attrs)...)
				}
			}
		}
	}
	if v, ok := sr.FrontendAttrs["cache-imports"]; ok {
		var imports []struct {
			Type  string            `json:"Type,omitempty"`
			Attrs map[string]string `json:"Attrs,omitempty"`
		}
		// Not ours to judge: an attribute we can't parse goes through as is.
		if err := json.Unmarshal([]byte(v), &imports); err == nil {
			for _, im := range imports {
				if im.Type == "s3" && im.Attrs != nil {
					refs = append(refs, e.vault.Seal(im.Attrs)...)
				}
			}
			if dt, err := json.Marshal(imports); err == nil {
				sr.FrontendAttrs["cache-imports"] = string(dt)
			}
		}
	}
	defer e.vault.Release(refs)
	return handler(ctx, req)
}
