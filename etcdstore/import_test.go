package etcdstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestImport(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	existing := newRecord("existing")
	if err := s.Create(t.Context(), existing); err != nil {
		t.Fatal(err)
	}
	// Enough records for several transactions, some with every kind of index.
	var records []Record
	for i := range 100 {
		d := newRecord(fmt.Sprintf("gw%03d", i))
		if i%3 == 0 {
			d = withSecrets(d, fmt.Sprintf("rt-%d", i), fmt.Sprintf("vid-%d", i))
		}
		records = append(records, d)
	}
	takenName := newRecord("existing")
	takenToken := newRecord("thief")
	takenToken.Token = existing.Token
	twin := newRecord("twin")
	twin.Token = records[5].Token
	sameName := newRecord("gw001")
	records = append(records, takenName, takenToken, twin, Record{Name: "tokenless"}, sameName)
	want := func(name string, status ImportStatus, reason string) func(ImportResult) error {
		return func(r ImportResult) error {
			if r.Name != name || r.Status != status || !strings.Contains(r.Reason, reason) {
				return fmt.Errorf("got %+v, want %s with status %d and a reason containing %q", r, name, status, reason)
			}
			return nil
		}
	}
	conflicts := []func(ImportResult) error{
		want("existing", Conflict, "the name is already registered: the stored record differs in [token]"),
		want("thief", Conflict, `its API token is already "existing"'s`),
		want("twin", Conflict, `its API token is also "gw005"'s, an earlier record of this import`),
		want("tokenless", Conflict, "a record needs a name and a token"),
		want("gw001", Conflict, "the same name as an earlier record of this import"),
	}
	run := func(dryRun bool, status ImportStatus) {
		t.Helper()
		var progress []int
		results, err := s.Import(t.Context(), records, ImportOptions{DryRun: dryRun, Progress: func(n int) { progress = append(progress, n) }})
		if err != nil {
			t.Fatal(err)
		}
		if len(results) != len(records) {
			t.Fatalf("%d results for %d records", len(results), len(records))
		}
		for i, r := range results[:100] {
			if err := want(records[i].Name, status, "")(r); err != nil {
				t.Error(err)
			}
		}
		for i, check := range conflicts {
			if err := check(results[100+i]); err != nil {
				t.Error(err)
			}
		}
		if len(progress) < 2 || progress[len(progress)-1] != len(records) {
			t.Errorf("progress %v, want several calls ending at %d", progress, len(records))
		}
		for _, r := range results {
			for _, d := range records {
				if d.Token != "" && strings.Contains(r.Reason, d.Token) {
					t.Errorf("reason %q shows a token", r.Reason)
				}
			}
		}
	}

	before := keyCount(t, s)
	run(true, Imported)
	if n := keyCount(t, s); n != before {
		t.Fatalf("the dry run wrote: %d keys, was %d", n, before)
	}
	run(false, Imported)
	// 100 records, 100 token indexes, and 34 records with a reclamation and a verification index.
	if n := keyCount(t, s); n != before+200+2*34 {
		t.Errorf("%d keys after the import, want %d", n, before+200+2*34)
	}
	for _, d := range records[:100] {
		got, err := s.Get(t.Context(), ByToken(d.Token))
		gotVerify, _ := got.Verification()
		wantVerify, _ := d.Verification()
		if err != nil || got.Name != d.Name || got.Description != d.Description || gotVerify != wantVerify {
			t.Fatalf("%s by token: %+v, %v", d.Name, got, err)
		}
	}
	assertConsistent(t, s)
	run(false, Unchanged)
	run(true, Unchanged)
	assertConsistent(t, s)
}

func TestImportStopsOnEtcdError(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Import(ctx, []Record{newRecord("a")}, ImportOptions{}); err == nil {
		t.Fatal("an import with a cancelled context succeeded")
	}
}

func TestImportSame(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	d := newRecord("alpha")
	if _, err := s.Import(t.Context(), []Record{d}, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	again := d
	again.Created = d.Created.Add(time.Hour)
	ignoreCreated := func(stored, record *Record) bool { return stored.Token == record.Token && stored.Name == record.Name }
	for _, tt := range []struct {
		same func(stored, record *Record) bool
		want ImportStatus
	}{{nil, Conflict}, {ignoreCreated, Unchanged}} {
		res, err := s.Import(t.Context(), []Record{again}, ImportOptions{Same: tt.same})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Status != tt.want {
			t.Errorf("with Same %v: %+v, want status %d", tt.same != nil, res[0], tt.want)
		}
	}
}

// A stored record of an earlier version is compared in this version's fields: its pending
// address is the unverified contact, as the import's record has it, so a rerun of the import
// after an upgrade finds it Unchanged.
func TestImportSameReadsEarlierLayout(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	legacy := `{"name":"alpha","token":"tok","description":"","mode":0,"created":"2026-01-01T00:00:00Z","pending_email":"b@example.org"}`
	if _, err := s.Client().Put(t.Context(), s.keys.name("alpha"), legacy); err != nil {
		t.Fatal(err)
	}
	d := Record{Name: "alpha", Token: "tok", Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	d.SetEmail("b@example.org", false)
	sameContact := func(stored, record *Record) bool {
		return stored.Token == record.Token && stored.Email == record.Email && stored.EmailVerified() == record.EmailVerified()
	}
	res, err := s.Import(t.Context(), []Record{d}, ImportOptions{Same: sameContact})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Status != Unchanged {
		t.Errorf("import over the earlier layout of the same record: %+v, want Unchanged", res[0])
	}
}

// Records too large to share one transaction under etcd's request size limit are split.
func TestImportLargeRecords(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	var records []Record
	for i := range 8 {
		d := newRecord(fmt.Sprintf("big%d", i))
		d.Description = strings.Repeat("x", 400<<10)
		records = append(records, d)
	}
	res, err := s.Import(t.Context(), records, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != Imported {
			t.Errorf("%+v", r)
		}
	}
}
