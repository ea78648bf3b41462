package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/regdns/regdns/plugin/dnstest"
)

// The packaging of build/package: the systemd unit and the container recipe.

const (
	systemdUnit   = "../package/systemd/regdns.service"
	containerfile = "../package/container/Containerfile"
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

// podman runs podman with runc and cgroupfs, which work where crun cannot (this machine's
// cgroups are in hybrid mode), and with limits a container can set without privileges.
func podman(args ...string) *exec.Cmd {
	all := []string{"--runtime", "runc", "--cgroup-manager", "cgroupfs"}
	if args[0] == "run" {
		all = append(all, "run", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096")
		args = args[1:]
	}
	return exec.Command("podman", append(all, args...)...)
}

// TestContainerfile checks the recipe itself: the static binary alone, an unprivileged user,
// the data volume, the documented ports and the entrypoint on the built-in Corefile.
func TestContainerfile(t *testing.T) {
	recipe := mustRead(t, containerfile)
	for _, want := range []string{
		"\nFROM scratch\n", "\nUSER 65532:65532\n", "\nVOLUME /var/lib/regdns\n",
		"\nCOPY --chown=65532:65532 state/ /var/lib/regdns/\n",
		"\nEXPOSE 53/udp 53/tcp 8081/tcp 9153/tcp 8181/tcp\n",
		"\nENTRYPOINT [\"/usr/bin/regdns\", \"-conf\", \"/etc/regdns/Corefile\"]\n",
	} {
		if !strings.Contains(recipe, want) {
			t.Errorf("the Containerfile lacks %q", strings.TrimSpace(want))
		}
	}
	if corefile := mustRead(t, "../package/container/Corefile"); !strings.Contains(corefile, "data /var/lib/regdns\n") {
		t.Error("the container's Corefile does not keep its data in the volume")
	}
}

// containerContext prepares what the Containerfile copies: a static ./coredns, the Corefile
// and an empty state directory.
func containerContext(t *testing.T) string {
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "coredns"), "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "Corefile"), []byte(mustRead(t, "../package/container/Corefile")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestContainerImage builds the image with podman and runs it as its README says: the API
// registers a name, DNS over the published port 53 answers it, the process runs as 65532
// with CAP_NET_BIND_SERVICE as its only capability, the embedded etcd's data is on the
// volume; without that capability the server cannot bind port 53.
func TestContainerImage(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is required (make test installs Debian's podman and runc packages)")
	}
	id := fmt.Sprintf("regdns-test-%08x", rand.Uint32())
	image := "localhost/" + id
	if out, err := podman("build", "-f", containerfile, "-t", image, containerContext(t)).CombinedOutput(); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Cleanup(func() { podman("rmi", "-f", image).Run() })
	if out, err := podman("volume", "create", id).CombinedOutput(); err != nil {
		t.Fatalf("podman volume create: %v\n%s", err, out)
	}
	t.Cleanup(func() { podman("volume", "rm", "-f", id).Run() })

	addrs := dnstest.FreeAddrs(t, 2)
	_, dnsPort, _ := net.SplitHostPort(addrs[0])
	_, apiPort, _ := net.SplitHostPort(addrs[1])
	out, err := podman("run", "-d", "--name", id, "--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE",
		"-p", "127.0.0.1:"+dnsPort+":53/udp", "-p", "127.0.0.1:"+dnsPort+":53/tcp", "-p", "127.0.0.1:"+apiPort+":8081",
		"-v", id+":/var/lib/regdns", image).CombinedOutput()
	if err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := podman("logs", id).CombinedOutput()
			t.Logf("container output:\n%s", logs)
		}
		podman("rm", "-f", "-v", id).Run()
	})

	api := "http://" + addrs[1]
	var body string
	waitUntil(t, 60*time.Second, "the container's API answering", func() bool {
		code, b, err := apiGet(api, "/subscribe", url.Values{"name": {"demo"}}, "")
		body = b
		return err == nil && code == 200
	})
	if !strings.Contains(body, `"name":"demo"`) {
		t.Fatalf("subscribe: %s", body)
	}
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 5 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion("demo.mydomain.org.", dns.TypeA)
		r, _, err := c.Exchange(m, addrs[0])
		if err != nil {
			t.Fatalf("DNS over %s to the container: %v", network, err)
		}
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.80" {
			t.Errorf("DNS over %s: %v, want demo at the tunnel address 192.0.2.80", network, r.Answer)
		}
	}

	top, err := podman("top", id, "user", "capeff").CombinedOutput()
	if err != nil {
		t.Fatalf("podman top: %v\n%s", err, top)
	}
	// Two processes: the server and its embedded etcd's (a child of the same binary, which
	// inherits the server's user and its one capability).
	lines := strings.Split(strings.TrimSpace(string(top)), "\n")
	if len(lines) != 3 {
		t.Errorf("process user and capabilities:\n%s\nwant the server and its etcd process", top)
	}
	for _, line := range lines[1:] {
		if f := strings.Fields(line); len(f) != 2 || f[0] != "65532" || f[1] != "NET_BIND_SERVICE" {
			t.Errorf("process user and capabilities:\n%s\nwant 65532 with NET_BIND_SERVICE only", top)
		}
	}
	mount, err := podman("volume", "inspect", "--format", "{{.Mountpoint}}", id).Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(mount)), "etcd", "member")); err != nil {
		t.Errorf("the embedded etcd's data is not on the volume: %v", err)
	}

	without := id + "-nocap"
	out, _ = podman("run", "--name", without, "--cap-drop", "ALL", image).CombinedOutput()
	podman("rm", "-f", "-v", without).Run()
	if !strings.Contains(string(out), "bind: permission denied") {
		t.Errorf("without NET_BIND_SERVICE the server should fail to bind port 53; it said:\n%s", out)
	}
}

// TestClusterExample checks the cluster example for the mistakes a reader would copy: the
// member script parses, and the replicas' Corefile names exactly its three members' client
// URLs. (The setup itself runs in TestReplicas, on loopback without TLS.)
func TestClusterExample(t *testing.T) {
	script := "../package/cluster/etcd-member.sh"
	if out, err := exec.Command("sh", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("sh -n %s: %v\n%s", script, err, out)
	}
	members := regexp.MustCompile(`\bM([123])=(\S+)`).FindAllStringSubmatch(mustRead(t, script), -1)
	var want []string
	for _, m := range members {
		want = append(want, "https://"+m[2]+":2379")
	}
	line := regexp.MustCompile(`(?m)^\s*etcd (.*)$`).FindStringSubmatch(mustRead(t, "../package/cluster/Corefile"))
	if len(want) != 3 || line == nil || !slices.Equal(strings.Fields(line[1]), want) {
		t.Errorf("the replicas' etcd line %q, want the members %q", line, want)
	}
}
