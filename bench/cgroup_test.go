package main

import "testing"

func TestParseMemoryCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, own, v2Controllers string
		dir, limitFile           string
		wantErr                  bool
	}{
		{
			name:      "cgroup v1",
			own:       "9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n",
			dir:       "/sys/fs/cgroup/memory/process_api/abc",
			limitFile: "memory.limit_in_bytes",
		},
		{
			name:      "cgroup v1, memory mounted with another controller",
			own:       "3:cpu,memory:/ci\n",
			dir:       "/sys/fs/cgroup/memory/ci",
			limitFile: "memory.limit_in_bytes",
		},
		{
			name:          "cgroup v2 with the memory controller",
			own:           "0::/user.slice/bench\n",
			v2Controllers: "cpuset cpu io memory pids\n",
			dir:           "/sys/fs/cgroup/user.slice/bench",
			limitFile:     "memory.max",
		},
		{
			name:          "cgroup v2 without it",
			own:           "0::/\n",
			v2Controllers: "cpu pids\n",
			wantErr:       true,
		},
		{name: "nothing", own: "", wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, limitFile, err := parseMemoryCgroup(tc.own, tc.v2Controllers)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %s %s, want an error", dir, limitFile)
				}
				return
			}
			if err != nil || dir != tc.dir || limitFile != tc.limitFile {
				t.Fatalf("got %q %q %v, want %q %q", dir, limitFile, err, tc.dir, tc.limitFile)
			}
		})
	}
}
