package etcdstore

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEmbeddedIsClosed starts the embedded etcd as the plugin does by default: no TCP port
// serves etcd's client API (the former default address refuses connections), the one TCP
// port it opens (raft's) demands a client certificate nobody has, and the Unix socket that
// LocalEndpoint names works for an etcd client and is the process owner's alone.
// Not parallel: it tells the embedded etcd's listeners apart from the process's others by
// comparing them before and after the start.
func TestEmbeddedIsClosed(t *testing.T) {
	before := processTCPListeners(t)
	data := t.TempDir()
	e, err := StartEmbedded(EmbeddedConfig{Dir: EmbeddedDir(data), Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	var opened []string
	for addr := range processTCPListeners(t) {
		if !before[addr] {
			opened = append(opened, addr)
		}
	}
	if len(opened) != 1 || opened[0] != e.etcd.Peers[0].Listener.Addr().String() {
		t.Errorf("embedded etcd listens on TCP %v, want its raft listener %s only", opened, e.etcd.Peers[0].Listener.Addr())
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:23790", time.Second); err == nil {
		c.Close()
		t.Error("127.0.0.1:23790 (the former default client address) accepts connections")
	}
	peerTLS := e.etcd.Config().PeerTLSInfo
	own, err := tls.LoadX509KeyPair(peerTLS.CertFile, peerTLS.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range opened {
		for name, certs := range map[string][]tls.Certificate{"no client certificate": nil, "the member's own certificate": {own}} {
			hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true, Certificates: certs},
			}}
			resp, err := hc.Get("https://" + addr + "/members")
			if err == nil {
				resp.Body.Close()
				t.Errorf("%s answered %s with %s", addr, resp.Status, name)
			}
		}
	}

	endpoint, err := LocalEndpoint(data)
	if err != nil {
		t.Fatal(err)
	}
	socket := strings.TrimPrefix(endpoint, "unix://")
	if want, _ := filepath.Abs(filepath.Join(data, "etcd", "client.sock")); socket != want {
		t.Errorf("LocalEndpoint = %s, want unix://%s", endpoint, want)
	}
	fi, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Getuid() {
		t.Errorf("socket owned by uid %d, want %d", uid, os.Getuid())
	}
	if di, err := os.Stat(filepath.Dir(socket)); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory: %v, mode %v, want 0700", err, di.Mode())
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(t.Context(), "/through/socket", "yes"); err != nil {
		t.Fatalf("etcd client through %s: %v", endpoint, err)
	}
	if resp, err := cli.Get(t.Context(), "/through/socket"); err != nil || len(resp.Kvs) != 1 {
		t.Errorf("read back through the socket: %v %v", resp, err)
	}
	if _, err := LocalEndpoint(t.TempDir()); err == nil {
		t.Error("LocalEndpoint of a data directory without a server succeeded")
	}
}

// processTCPListeners lists the TCP addresses this process listens on, from /proc: the
// listening sockets of the network namespace whose inodes are among this process's files.
func processTCPListeners(t *testing.T) map[string]bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if link, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	out := map[string]bool{}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && fields[3] == "0A" && inodes[fields[9]] {
				out[procAddr(t, fields[1])] = true
			}
		}
		f.Close()
	}
	return out
}

// procAddr turns /proc/net/tcp's HEXADDR:HEXPORT (the address in 32-bit words of host byte
// order) into host:port.
func procAddr(t *testing.T, s string) string {
	hexAddr, hexPort, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexAddr)
	port, perr := strconv.ParseUint(hexPort, 16, 16)
	if err != nil || perr != nil {
		t.Fatalf("bad /proc address %q", s)
	}
	for i := 0; i+4 <= len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)).String()
}

// TestEmbeddedOpensFormerDataDir opens, with the closed defaults, a data directory that an
// embedded etcd with a TCP client port and a plain-HTTP peer URL (the former defaults) wrote:
// upgrading keeps the data and takes writes.
func TestEmbeddedOpensFormerDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	former, err := StartEmbedded(loopbackConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), Config{Endpoints: former.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(t.Context(), newRecord("alpha")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	former.Close()

	e, err := StartEmbedded(EmbeddedConfig{Dir: dir, Fast: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	closed := openConfig(t, Config{Endpoints: e.Endpoints(), Local: e})
	if _, err := closed.Get(t.Context(), ByName("alpha")); err != nil {
		t.Errorf("alpha after the upgrade: %v", err)
	}
	if err := closed.Create(t.Context(), newRecord("beta")); err != nil {
		t.Errorf("write after the upgrade: %v", err)
	}
}
