package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// optIn are the workloads a run without -only leaves out: the scale
// workload takes far longer than the rest of the bench together (see
// bench/README.md).
var optIn = []string{"scale"}

// sectionOrder are the workloads whose results are sections of their own
// in results.md, each between markers, in this order after the main
// tables. A run that does not measure one keeps its section from the file
// as it was; a run that measures none of the main workloads (many, big,
// unrelated) keeps the main tables too. So `-only scale` adds or updates
// the scale section without discarding the rest.
var sectionOrder = []string{"merge10k", "scale"}

func sectionStart(name string) string { return "<!-- bench section: " + name + " -->\n" }
func sectionEnd(name string) string   { return "<!-- /bench section: " + name + " -->\n" }

// assembleResults is the new results file: head (the main tables, or the
// old file's when head is empty) and each section, new where measured,
// else as old had it.
func assembleResults(old, head string, sections map[string]string) string {
	oldHead := old
	if i := strings.Index(old, "<!-- bench section: "); i >= 0 {
		oldHead = old[:i]
	}
	if head == "" {
		head = oldHead
	}
	var sb strings.Builder
	sb.WriteString(strings.TrimRight(head, "\n"))
	sb.WriteString("\n")
	for _, name := range sectionOrder {
		body := sections[name]
		if body == "" {
			start := strings.Index(old, sectionStart(name))
			end := strings.Index(old, sectionEnd(name))
			if start < 0 || end < start {
				continue
			}
			body = old[start+len(sectionStart(name)) : end]
		}
		sb.WriteString("\n" + sectionStart(name))
		sb.WriteString(strings.TrimRight(strings.TrimLeft(body, "\n"), "\n") + "\n")
		sb.WriteString(sectionEnd(name))
	}
	return sb.String()
}

// sectionEnvironment describes the run in a section of its own, which may
// outlive the main tables' run; wl is the section's workload, if one.
func (b *bench) sectionEnvironment(ctx context.Context, wl *workload) []string {
	env := []string{"date: " + time.Now().UTC().Format("2006-01-02 15:04 UTC"), machineLine()}
	if dt, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(dt))
		if len(f) >= 3 {
			env = append(env, fmt.Sprintf("load average at the end of the section (1, 5, 15 min): %s %s %s", f[0], f[1], f[2]))
		}
	}
	if b.note != "" {
		env = append(env, "note: "+b.note)
	}
	env = append(env, b.versions(ctx)...)
	if wl != nil {
		env = append(env, "workload "+wl.String())
	}
	return env
}
