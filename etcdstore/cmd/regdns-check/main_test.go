package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/regdns/regdns/etcdstore"
)

func TestRun(t *testing.T) {
	data := t.TempDir()
	e, err := etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{
		Dir: etcdstore.EmbeddedDir(data), ClientURL: "http://127.0.0.1:0", PeerURL: "http://127.0.0.1:0", Fast: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	s, err := etcdstore.Open(t.Context(), etcdstore.Config{Endpoints: e.Endpoints(), Prefix: "/reg/"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	token := rand.Text()
	if err := s.Create(t.Context(), etcdstore.Domain{Name: "alpha", Token: token}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := "http://" + l.Addr().String()
	l.Close()

	endpoints := " " + e.Endpoints()[0] + ", ,"
	damage := func(ctx context.Context) error {
		_, err := s.Client().Put(ctx, "/reg/names/beta", "{")
		return err
	}
	tests := []struct {
		name   string
		before func(context.Context) error
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"consistent", nil, []string{"-endpoints", endpoints, "-prefix", "/reg"}, 0, nil, ""},
		{"other prefix is empty", nil, []string{"-endpoints", endpoints, "-prefix", "/nothing/"}, 0, nil, ""},
		{"damaged", damage, []string{"-endpoints", endpoints, "-prefix", "/reg/", "-timeout", "1s"}, 1,
			[]string{"/reg/names/beta: record is not valid JSON"}, "1 problem(s)"},
		{"embedded etcd of a data directory", damage, []string{"-data", data, "-prefix", "/reg/"}, 1,
			[]string{"/reg/names/beta: record is not valid JSON"}, "1 problem(s)"},
		{"no embedded etcd in the data directory", nil, []string{"-data", t.TempDir()}, 2, nil, "no embedded etcd socket"},
		{"etcd unreachable", nil, []string{"-endpoints", nobody, "-timeout", "300ms"}, 2, nil, "consistency check"},
		{"bad flag", nil, []string{"-nope"}, 2, nil, "flag provided but not defined"},
		{"stray argument", nil, []string{"-endpoints", endpoints, "extra"}, 2, nil, `unexpected argument "extra"`},
		{"missing certificate", nil, []string{"-endpoints", endpoints, "-cert", "/nonexistent.pem", "-key", "/nonexistent.key"}, 2, nil, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				if err := tt.before(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			start := time.Now()
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v", took)
			}
			lines := strings.Fields(stdout.String())
			if len(tt.stdout) == 0 && len(lines) > 0 {
				t.Errorf("unexpected output:\n%s", stdout.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, stderr.String())
			}
			if strings.Contains(stdout.String()+stderr.String(), token) {
				t.Error("output shows the token")
			}
		})
	}
}
