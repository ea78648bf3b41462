package main

import (
	"os"
	"path/filepath"
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
