package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// capMemory moves pid into a new memory cgroup, a child of the bench's own,
// limited to limit bytes, and returns the function that removes the cgroup
// once pid has exited.
//
// Capped, MinIO's page cache recycles its own pages instead of growing. On
// a VM whose free memory the host reclaims (as virtio-balloon free page
// reporting does), every page the page cache grows into is first touched
// on the host's side: after a few GB written, MinIO's CPU per byte roughly
// doubles for whichever daemon happens to be exporting. The cap tells that
// apart from the daemons' own costs (see the README).
func capMemory(pid int, limit int64) (release func(), err error) {
	dir, limitFile, err := memoryCgroupDir()
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, fmt.Sprintf("s3cache-bench-minio-%d", pid))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create memory cgroup: %w", err)
	}
	remove := func() {
		// The killed process leaves the cgroup when it is reaped, shortly.
		for i := 0; i < 50; i++ {
			if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		remove()
		return nil, fmt.Errorf("set memory cgroup limit: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		remove()
		return nil, fmt.Errorf("move process %d into memory cgroup: %w", pid, err)
	}
	return remove, nil
}

// memoryCgroupDir is the directory of this process's memory cgroup and the
// name of its limit file.
func memoryCgroupDir() (dir, limitFile string, err error) {
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", "", fmt.Errorf("read own cgroups: %w", err)
	}
	// Absent without cgroup v2's unified hierarchy at /sys/fs/cgroup.
	v2Controllers, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	return parseMemoryCgroup(string(own), string(v2Controllers))
}

// parseMemoryCgroup finds the memory cgroup in own, the lines of
// /proc/self/cgroup: cgroup v1's memory hierarchy, or cgroup v2's unified
// one when v2Controllers (its root's cgroup.controllers) has memory.
func parseMemoryCgroup(own, v2Controllers string) (dir, limitFile string, err error) {
	var v2Path string
	for _, line := range strings.Split(own, "\n") {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if slices.Contains(strings.Split(parts[1], ","), "memory") {
			return filepath.Join("/sys/fs/cgroup/memory", parts[2]), "memory.limit_in_bytes", nil
		}
		if parts[0] == "0" && parts[1] == "" {
			v2Path = parts[2]
		}
	}
	if v2Path != "" && slices.Contains(strings.Fields(v2Controllers), "memory") {
		return filepath.Join("/sys/fs/cgroup", v2Path), "memory.max", nil
	}
	return "", "", errors.New("no memory cgroup controller")
}
