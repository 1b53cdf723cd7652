package main

import (
	"strings"
	"testing"
)

func TestAssembleResults(t *testing.T) {
	section := func(name, body string) string {
		return "\n" + sectionStart(name) + body + "\n" + sectionEnd(name)
	}
	old := "# main\n\nold tables\n" + section("merge10k", "old merge") + section("scale", "old scale")
	for _, tc := range []struct {
		name, old, head string
		sections        map[string]string
		want            string
	}{
		{
			name:     "a run of scale alone keeps the main tables and merge10k",
			old:      old,
			sections: map[string]string{"scale": "new scale"},
			want:     "# main\n\nold tables\n" + section("merge10k", "old merge") + section("scale", "new scale"),
		},
		{
			name:     "a main run keeps scale, which it did not measure",
			old:      old,
			head:     "# main\n\nnew tables\n",
			sections: map[string]string{"merge10k": "new merge"},
			want:     "# main\n\nnew tables\n" + section("merge10k", "new merge") + section("scale", "old scale"),
		},
		{
			name:     "an old file without sections gets them appended",
			old:      "# main\n\nold tables\n",
			sections: map[string]string{"scale": "new scale\n"},
			want:     "# main\n\nold tables\n" + section("scale", "new scale"),
		},
		{
			name: "no old file",
			head: "# main\n",
			want: "# main\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := assembleResults(tc.old, tc.head, tc.sections)
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			// Assembling again with nothing new changes nothing.
			if again := assembleResults(got, "", nil); again != got {
				t.Errorf("not stable: %q then %q", got, again)
			}
			if strings.Count(got, "<!-- bench section: scale -->") > 1 {
				t.Errorf("scale section twice:\n%s", got)
			}
		})
	}
}
