package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The packaging of build/package: the systemd unit and the container recipe.

const (
	systemdUnit   = "package/systemd/regdns.service"
	containerfile = "package/container/Containerfile"
)

// unitRoot is a root directory for systemd-analyze holding the system's unit files (for the
// targets the unit names), the unit and an executable at each path the unit runs. The
// executables are stubs: verify checks that they exist, not what they do.
func unitRoot(t *testing.T) string {
	root := t.TempDir()
	units := filepath.Join(root, "usr/lib/systemd/system")
	if err := os.CopyFS(units, os.DirFS("/usr/lib/systemd/system")); err != nil {
		t.Fatalf("copying the system's units: %v", err)
	}
	unit := mustRead(t, systemdUnit)
	for _, line := range strings.Split(unit, "\n") {
		key, cmd, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(key, "Exec") {
			continue
		}
		exe := filepath.Join(root, strings.Fields(cmd)[0])
		if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(root, "etc/systemd/system")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "regdns.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestSystemdUnit: systemd-analyze verify finds nothing to say about the unit (an unknown
// key, a missing executable or target is reported), its security exposure stays at most 2.5
// of 10, and it keeps what the README promises: /var/lib/regdns as state and working
// directory, port 53 through CAP_NET_BIND_SERVICE only, reload by SIGUSR1.
func TestSystemdUnit(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is required (make test installs Debian's systemd package)")
	}
	root := unitRoot(t)
	out, err := exec.Command("systemd-analyze", "verify", "--root="+root, "regdns.service").CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=25", "--root="+root, "regdns.service").CombinedOutput()
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.5 (%v):\n%s", err, out)
	}
	unit := mustRead(t, systemdUnit)
	for _, want := range []string{
		"\nDynamicUser=yes\n", "\nStateDirectory=regdns\n", "\nWorkingDirectory=/var/lib/regdns\n",
		"\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n", "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"\nExecReload=/bin/kill -USR1 $MAINPID\n", "\nNoNewPrivileges=yes\n", "\nProtectSystem=strict\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q", strings.TrimSpace(want))
		}
	}
}

// TestSystemdUnitVerifyFails makes sure verify's silence means something: a misspelt key
// and a missing executable are reported.
func TestSystemdUnitVerifyFails(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is required (make test installs Debian's systemd package)")
	}
	root := unitRoot(t)
	path := filepath.Join(root, "etc/systemd/system/regdns.service")
	bad := strings.Replace(mustRead(t, systemdUnit), "ProtectClock=yes", "ProtectClok=yes", 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("systemd-analyze", "verify", "--root="+root, "regdns.service").CombinedOutput(); !strings.Contains(string(out), "ProtectClok") {
		t.Errorf("verify did not report a misspelt key: %s", out)
	}
	if err := os.Remove(filepath.Join(root, "usr/local/bin/regdns")); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("systemd-analyze", "verify", "--root="+root, "regdns.service").CombinedOutput(); !strings.Contains(string(out), "not executable") {
		t.Errorf("verify did not report a missing executable: %s", out)
	}
}
