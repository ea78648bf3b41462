package origdbtest

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" driver
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
	"github.com/regdns/regdns/plugin/dnstest"
)

// Server is a database server started for one test.
type Server struct {
	// URL is the importer's source for the server's database.
	URL string
	// DB is a connection to that database, to create tables and rows.
	DB *sql.DB
}

// StartPostgres runs Debian's PostgreSQL in a temporary directory on a free loopback port, as
// the postgres user (it refuses to run as root), and returns its "postgres" database. It
// skips the test if PostgreSQL is not installed.
func StartPostgres(t *testing.T) *Server {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(bins) == 0 {
		t.Skip("PostgreSQL is not installed (Debian package postgresql; make test installs it)")
	}
	bin := filepath.Dir(bins[len(bins)-1])
	dir := ownedTempDir(t, "postgres")
	data := filepath.Join(dir, "data")
	mustRun(t, asPostgres(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"))
	port := dnstest.FreePort(t)
	start(t, asPostgres(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-p", port,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "shared_buffers=16MB"))
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable", port)
	return connect(t, "pgx", url, url)
}

// StartMariaDB runs Debian's MariaDB in a temporary directory on a free loopback port, with
// an empty "regdns" database, and skips the test if MariaDB is not installed.
func StartMariaDB(t *testing.T) *Server {
	t.Helper()
	if _, err := exec.LookPath("mariadbd"); err != nil {
		if _, err := os.Stat("/usr/sbin/mariadbd"); err != nil {
			t.Skip("MariaDB is not installed (Debian package mariadb-server; make test installs it)")
		}
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mustRun(t, exec.Command("mariadb-install-db", "--no-defaults", "--user=root", "--datadir="+data,
		"--auth-root-authentication-method=normal", "--skip-test-db"))
	port := dnstest.FreePort(t)
	start(t, exec.Command("/usr/sbin/mariadbd", "--no-defaults", "--user=root", "--datadir="+data,
		"--socket="+filepath.Join(dir, "mysqld.sock"), "--port="+port, "--bind-address=127.0.0.1",
		"--skip-name-resolve", "--innodb-buffer-pool-size=16M", "--skip-log-bin", "--pid-file="+filepath.Join(dir, "pid")))
	admin := connect(t, "mysql", "", fmt.Sprintf("root@tcp(127.0.0.1:%s)/", port))
	if _, err := admin.DB.Exec("CREATE DATABASE regdns"); err != nil {
		t.Fatal(err)
	}
	return connect(t, "mysql", fmt.Sprintf("mysql://root@127.0.0.1:%s/regdns", port), fmt.Sprintf("root@tcp(127.0.0.1:%s)/regdns", port))
}

// ownedTempDir is a new directory that user owns, removed after the test; t.TempDir's
// parents are closed to other users.
func ownedTempDir(t *testing.T, user string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "regdns-"+user+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := exec.Command("chown", user+":", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v\n%s", dir, err, out)
	}
	return dir
}

// asPostgres is a command run as the postgres user.
func asPostgres(args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
}

// mustRun runs cmd to its end and fails the test if it fails.
func mustRun(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd.Args[0], err, out)
	}
}

// start runs a server process until the end of the test; its output is shown if the test fails.
func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "server-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(out.Name())
			t.Logf("%s output:\n%s", filepath.Base(cmd.Args[len(cmd.Args)-1]), b)
		}
	})
}

// connect opens dsn with driver and waits up to a minute for the server to accept it.
func connect(t *testing.T, driver, url, dsn string) *Server {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := db.Ping()
		if err == nil {
			return &Server{URL: url, DB: db}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s server did not accept connections within a minute: %v", driver, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
