package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/regdns/regdns/build/regdnsctl/origdbtest"
)

// benchRows is the size of the import benchmark: a large deployment of the original server.
const benchRows = 100_000

// BenchmarkImport imports benchRows rows from SQLite into a new embedded etcd (with fsync, as
// in production), through the whole command; `make bench` runs it once.
func BenchmarkImport(b *testing.B) {
	accounts := []origdbtest.Account{{ID: 1, Email: "", OptOut: true}}
	rows := make([]origdbtest.Domain, benchRows)
	for i := range rows {
		r := origdbtest.Domain{ID: int64(i + 1), Name: fmt.Sprintf("gw%06d.example.org.", i), AccountID: 1,
			Token: uuid.NewString(), Description: "gateway", Timestamp: time.Now().Unix() - int64(i), Continent: "EU"}
		// One in ten with a verified contact and a reclamation token; one in ten dynamic.
		if i%10 == 0 {
			accounts = append(accounts, origdbtest.Account{ID: int64(len(accounts) + 1), Email: fmt.Sprintf("owner%d@example.com", i)})
			r.AccountID, r.Verified, r.ReclamationToken = int64(len(accounts)), true, uuid.NewString()
		}
		if i%10 == 1 {
			r.Mode, r.LastIP = 1, fmt.Sprintf("198.51.%d.%d", i/256%256, i%256)
		}
		rows[i] = r
	}
	source := origdbtest.WriteSQLite(b, filepath.Join(b.TempDir(), "registration.sqlite"), accounts, rows)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		conf := testCorefile(b, "")
		b.StartTimer()
		code, stdout, stderr := regdnsctl("-conf", conf, "import", source)
		if code != exitOK {
			b.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, fmt.Sprintf("imported %d,", benchRows)) {
			b.Fatalf("not all imported:\n%s", stdout)
		}
	}
	b.ReportMetric(float64(benchRows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
