package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadCorefile(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		path := filepath.Join(dir, "Corefile")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	t.Setenv("REGDNS_TEST_PREFIX", "/from-env/")
	cfgs, err := ReadCorefile(write(`example.org:5300 {
    errors
    registry {
        etcd_prefix {$REGDNS_TEST_PREFIX}
        etcd_timeout 5s
    }
}
other.example:53 {
    whoami
}
dns://example.net {
    registry example.net example.com {
        etcd http://127.0.0.1:2379
    }
}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 2 {
		t.Fatalf("%d registry blocks, want 2", len(cfgs))
	}
	if got := strings.Join(cfgs[0].Zones, " "); got != "example.org." || cfgs[0].Etcd.Prefix != "/from-env/" || cfgs[0].Etcd.Timeout.String() != "5s" {
		t.Errorf("first block: zones %q, prefix %q, timeout %v", got, cfgs[0].Etcd.Prefix, cfgs[0].Etcd.Timeout)
	}
	if got := strings.Join(cfgs[1].Zones, " "); got != "example.net. example.com." || strings.Join(cfgs[1].Etcd.Endpoints, " ") != "http://127.0.0.1:2379" {
		t.Errorf("second block: zones %q, etcd %v", got, cfgs[1].Etcd.Endpoints)
	}

	for _, tt := range []struct{ corefile, want string }{
		{"example.org {\n    whoami\n}\n", "has no registry block"},
		{"example.org {\n    registry {\n        nonsense 1\n    }\n}\n", "unknown property 'nonsense'"},
		{"example.org {\n    registry {\n", "Unexpected EOF"},
	} {
		if _, err := ReadCorefile(write(tt.corefile)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one containing %q", tt.corefile, err, tt.want)
		}
	}
}

// Corefile.example, which `make run` serves and the README's quick start uses, parses, with the
// addresses its header and the quick start give.
func TestCorefileExampleParses(t *testing.T) {
	cfgs, err := ReadCorefile(filepath.Join("..", "..", "Corefile.example"))
	if err != nil {
		t.Fatal(err)
	}
	c := cfgs[0]
	if len(cfgs) != 1 || strings.Join(c.Zones, " ") != "mydomain.org." || c.APIAddr != "127.0.0.1:8081" || c.DataDir != "data" || len(c.Etcd.Endpoints) != 0 {
		t.Errorf("%d blocks; zones %v, api %s, data %s, etcd %v", len(cfgs), c.Zones, c.APIAddr, c.DataDir, c.Etcd.Endpoints)
	}
	if _, err := NewZone(c); err != nil {
		t.Errorf("its records: %v", err)
	}
}
