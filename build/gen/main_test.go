package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestGenerate(t *testing.T) {
	tests := []struct {
		name, cfg string
		want      []string
		wantErr   string
	}{
		{name: "core and external plugins in order", cfg: "# comment\nready:ready\n\nregistry:github.com/x/y/registry\nfile:file\n",
			want: []string{`_ "github.com/coredns/coredns/plugin/ready"`, `_ "github.com/x/y/registry"`, `"ready",` + "\n\t\"registry\",\n\t\"file\","}},
		{name: "duplicate", cfg: "file:file\nfile:file\n", wantErr: "listed twice"},
		{name: "no package", cfg: "file\n", wantErr: "want name:package"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "plugin.cfg")
			os.WriteFile(path, []byte(tc.cfg), 0o644)
			src, err := generate(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(src), w) {
					t.Errorf("generated source lacks %q:\n%s", w, src)
				}
			}
		})
	}
}

// The committed build/zplugins.go must be what plugin.cfg generates.
func TestCommittedFileIsCurrent(t *testing.T) {
	src, err := generate("../../plugin.cfg")
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../zplugins.go")
	if err != nil {
		t.Fatal(err)
	}
	if string(src) != string(have) {
		t.Error("build/zplugins.go is stale: run `make generate`")
	}
}

// orderConflicts lists the plugins of ours that run after a plugin they run before in
// upstream; plugins upstream does not have (registry) are free to go anywhere.
func orderConflicts(ours, upstream []string) []string {
	pos := map[string]int{}
	for i, name := range upstream {
		pos[name] = i
	}
	var conflicts []string
	prev := ""
	for _, name := range ours {
		i, ok := pos[name]
		if !ok {
			continue
		}
		if prev != "" && i < pos[prev] {
			conflicts = append(conflicts, fmt.Sprintf("%s runs after %s here, before it in CoreDNS", name, prev))
		}
		if prev == "" || i > pos[prev] {
			prev = name
		}
	}
	return conflicts
}

func TestOrderConflicts(t *testing.T) {
	upstream := []string{"log", "rewrite", "acl", "cache", "dnssec", "minimal", "file"}
	tests := []struct {
		name string
		ours []string
		want []string
	}{
		{name: "same order, with a plugin upstream lacks", ours: []string{"log", "rewrite", "acl", "registry", "file"}},
		{name: "acl before rewrite (CoreDNS before 1.12)", ours: []string{"log", "acl", "cache", "rewrite", "minimal", "dnssec", "file"},
			want: []string{"rewrite runs after cache here, before it in CoreDNS", "dnssec runs after minimal here, before it in CoreDNS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := orderConflicts(tc.ours, upstream); !slices.Equal(got, tc.want) {
				t.Errorf("conflicts %q, want %q", got, tc.want)
			}
		})
	}
}

// Our plugin.cfg must keep the order of the CoreDNS module go.mod builds against: upstream
// moves plugins for reasons of its own (rewrite before acl closed an ACL bypass).
func TestOrderFollowsCoreDNS(t *testing.T) {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/coredns/coredns").Output()
	if err != nil {
		t.Fatalf("go list -m github.com/coredns/coredns: %v", err)
	}
	upstream, _, err := readPlugins(filepath.Join(strings.TrimSpace(string(dir)), "plugin.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	ours, _, err := readPlugins("../../plugin.cfg")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range orderConflicts(ours, upstream) {
		t.Errorf("plugin.cfg: %s", c)
	}
}
