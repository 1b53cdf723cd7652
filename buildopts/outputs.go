package buildopts

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/client"
)

// exports parses -o values as buildx does: `type=local,dest=DIR`,
// `type=tar|oci|docker,dest=FILE|-`, `type=image,name=...,push=true`, or the
// shorthands `-o DIR` (local) and `-o -` (tar to stdout). -t names images.
func (o Options) exports() ([]client.ExportEntry, error) {
	var out []client.ExportEntry
	for _, v := range o.Outputs {
		e, err := o.parseOutput(v)
		if err != nil {
			return nil, fmt.Errorf("--output %q: %w", v, err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (o Options) parseOutput(v string) (client.ExportEntry, error) {
	e := client.ExportEntry{Attrs: map[string]string{}}
	if v == "-" {
		e.Type = client.ExporterTar
		e.Output = o.stdoutOutput
		return e, nil
	}
	if !strings.Contains(v, "=") {
		e.Type = client.ExporterLocal
		e.OutputDir = v
		return e, nil
	}
	fields, err := csvFields(v)
	if err != nil {
		return e, err
	}
	for _, f := range fields {
		k, val, ok := strings.Cut(f, "=")
		if !ok {
			return e, fmt.Errorf("field %q is not key=value", f)
		}
		k = strings.ToLower(k)
		if k == "type" {
			e.Type = val
			continue
		}
		e.Attrs[k] = val
	}
	dest := e.Attrs["dest"]
	delete(e.Attrs, "dest")
	switch e.Type {
	case client.ExporterLocal:
		if dest == "" {
			return e, fmt.Errorf("type=local needs dest=DIR")
		}
		e.OutputDir = dest
	case client.ExporterTar, client.ExporterOCI, client.ExporterDocker:
		switch dest {
		case "":
			return e, fmt.Errorf("type=%s needs dest=FILE (or dest=- for stdout)", e.Type)
		case "-":
			e.Output = o.stdoutOutput
		default:
			e.Output = fileOutput(dest)
		}
		if e.Type != client.ExporterTar && len(o.Tags) > 0 && e.Attrs["name"] == "" {
			e.Attrs["name"] = strings.Join(o.Tags, ",")
		}
	case client.ExporterImage, "registry":
		if e.Type == "registry" {
			// buildx's shorthand for an image that is pushed.
			e.Type = client.ExporterImage
			e.Attrs["push"] = "true"
		}
		if e.Attrs["name"] == "" {
			if len(o.Tags) == 0 {
				return e, fmt.Errorf("type=image needs name=... or -t")
			}
			e.Attrs["name"] = strings.Join(o.Tags, ",")
		}
	case "":
		return e, fmt.Errorf("type is required")
	default:
		return e, fmt.Errorf("unknown output type %q (local, tar, oci, docker, image or registry)", e.Type)
	}
	return e, nil
}

func (o Options) stdoutOutput(map[string]string) (io.WriteCloser, error) {
	w := o.Stdout
	if w == nil {
		w = os.Stdout
	}
	return nopWriteCloser{w}, nil
}

func fileOutput(path string) func(map[string]string) (io.WriteCloser, error) {
	return func(map[string]string) (io.WriteCloser, error) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create directory for %s: %w", path, err)
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("create output %s: %w", path, err)
		}
		return f, nil
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
