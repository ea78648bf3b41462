package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regdns/regdns/etcdstore"
	"github.com/regdns/regdns/plugin/dnstest"
)

func TestCheck(t *testing.T) {
	conf := testCorefile(t, "        etcd_prefix /reg/")
	cfg, err := registryConfig(conf, "")
	if err != nil {
		t.Fatal(err)
	}
	// The test plays the running server: its embedded etcd on the Corefile's data and URLs.
	e, err := etcdstore.StartEmbedded(embeddedOf(cfg, true))
	if err != nil {
		t.Fatal(err)
	}
	serverUp := true
	t.Cleanup(func() {
		if serverUp {
			e.Close()
		}
	})
	s, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: e.Endpoints(), Prefix: "/reg/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const token = "7e0c3f1a-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
	if err := s.Create(t.Context(), etcdstore.Record{Name: "alpha", Token: token}); err != nil {
		t.Fatal(err)
	}
	nobody := filepath.Join(t.TempDir(), "Corefile")
	if err := os.WriteFile(nobody, []byte("example.org {\n    registry {\n        etcd http://"+dnstest.FreeAddrs(t, 1)[0]+"\n        etcd_timeout 300ms\n    }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		before func(t *testing.T)
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"consistent, through the running server's etcd", nil, []string{"-conf", conf, "check"}, exitOK, nil, "using the running server's embedded etcd"},
		{"damaged", func(t *testing.T) {
			if _, err := s.Client().Put(t.Context(), "/reg/names/beta", "{"); err != nil {
				t.Fatal(err)
			}
		}, []string{"-conf", conf, "check"}, exitFindings, []string{"/reg/names/beta: record is not valid JSON"}, "1 problem(s)"},
		{"no server: its embedded etcd started on the data directory", func(t *testing.T) {
			s.Close()
			e.Close()
			serverUp = false
		}, []string{"-conf", conf, "check"}, exitFindings, []string{"/reg/names/beta: record is not valid JSON"}, "no server is running: starting its embedded etcd on"},
		{"etcd unreachable", nil, []string{"-conf", nobody, "check"}, exitError, nil, "consistency check"},
		{"no Corefile", nil, []string{"-conf", filepath.Join(t.TempDir(), "none"), "check"}, exitError, nil, "no such file"},
		{"bad flag", nil, []string{"-conf", conf, "check", "-nope"}, exitError, nil, "flag provided but not defined"},
		{"stray argument", nil, []string{"-conf", conf, "check", "extra"}, exitError, nil, `unexpected argument "extra"`},
		{"unknown command", nil, []string{"frobnicate"}, exitError, nil, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before(t)
			}
			start := time.Now()
			code, stdout, stderr := regdnsctl(tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("took %v", took)
			}
			if len(tt.stdout) == 0 && strings.TrimSpace(stdout) != "" {
				t.Errorf("unexpected output:\n%s", stdout)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr)
			}
			if strings.Contains(stdout+stderr, token) {
				t.Error("output shows the token")
			}
		})
	}
}

func TestRegistryConfigChoosesBlock(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "Corefile")
	text := "example.org {\n    registry {\n        etcd_prefix /org/\n    }\n}\nexample.net {\n    registry {\n        etcd_prefix /net/\n    }\n}\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ zone, prefix, err string }{
		{"", "", "has 2 registry blocks: choose one with -zone"},
		{"example.net", "/net/", ""},
		{"EXAMPLE.ORG.", "/org/", ""},
		{"example.com", "", "has no registry block for example.com."},
	} {
		cfg, err := registryConfig(conf, tt.zone)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("zone %q: %v, want an error containing %q", tt.zone, err, tt.err)
			}
			continue
		}
		if err != nil || cfg.Etcd.Prefix != tt.prefix {
			t.Errorf("zone %q: prefix %q, %v; want %q", tt.zone, cfg.Etcd.Prefix, err, tt.prefix)
		}
	}
}
