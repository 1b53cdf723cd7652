package engine

import (
	"context"
	"encoding/json"

	controlapi "github.com/moby/buildkit/api/services/control"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/s3cache/s3cache/spec"
)

const solveMethod = "/moby.buildkit.v1.Control/Solve"

// sealSecrets keeps `type=s3` secrets out of what BuildKit stores: a Solve
// request's cache entries, and the copy of the cache imports the client puts
// in the frontend's attributes (which the build history record keeps), get
// their secret values replaced by references into the vault, bound to the
// request's session, for as long as the build runs. It also refuses, before
// anything runs, an entry the daemon's policy does not allow or that carries
// a reference of the vault's own making.
func (e *Engine) sealSecrets(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	sr, ok := req.(*controlapi.SolveRequest)
	if !ok || info.FullMethod != solveMethod {
		return handler(ctx, req)
	}
	var refs []string
	seal := func(attrs map[string]string) error {
		if err := e.checkPolicy(attrs); err != nil {
			return err
		}
		r, err := e.vault.Seal(attrs, sr.Session)
		refs = append(refs, r...)
		return err
	}
	refuse := func(err error) error {
		e.vault.Release(refs)
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if sr.Cache != nil {
		for _, list := range [][]*controlapi.CacheOptionsEntry{sr.Cache.Exports, sr.Cache.Imports} {
			for _, ent := range list {
				if ent != nil && ent.Type == "s3" && ent.Attrs != nil {
					if err := seal(ent.Attrs); err != nil {
						return nil, refuse(err)
					}
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
					if err := seal(im.Attrs); err != nil {
						return nil, refuse(err)
					}
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

// checkPolicy refuses an entry the daemon's policy does not allow. An
// entry that does not parse is left to the backend, which reports it.
func (e *Engine) checkPolicy(attrs map[string]string) error {
	cfg, err := spec.FromAttrs(attrs)
	if err != nil {
		return nil
	}
	return e.policy.Check(cfg)
}
