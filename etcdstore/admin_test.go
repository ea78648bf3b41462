package etcdstore

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// connect opens a bare Keyspace (no view) on e under prefix.
func connect(t *testing.T, e *Embedded, prefix string) *Keyspace {
	t.Helper()
	ks, err := Connect(Config{Endpoints: e.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

// A Keyspace writes records through the Store's guarded transactions: index keys move with
// the secrets, a Store's view follows, and changes made concurrently through both are all
// applied, none lost.
func TestKeyspaceWritesLikeStore(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s, ks := openStore(t, e, ""), connect(t, e, "")
	d := newRecord("alpha")
	if err := ks.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	if err := ks.Create(t.Context(), d); !errors.Is(err, ErrNameTaken) {
		t.Errorf("second Create: %v, want ErrNameTaken", err)
	}
	rotated, err := ks.Update(t.Context(), ByName("alpha"), func(d *Record) error {
		d.Token = "rotated-token"
		return nil
	})
	if err != nil || rotated.Token != "rotated-token" {
		t.Fatalf("Update: %+v, %v", rotated, err)
	}
	if _, err := s.Get(t.Context(), ByToken(d.Token)); !errors.Is(err, ErrNotFound) {
		t.Errorf("old token after rotation: %v, want ErrNotFound", err)
	}
	eventually(t, 10*time.Second, "the store's view did not follow the rotation", func() bool {
		_, ok := s.View().LookupToken("rotated-token")
		return ok
	})
	assertConsistent(t, s)

	var wg sync.WaitGroup
	const each = 15
	add := func(update func() error) {
		defer wg.Done()
		for range each {
			if err := update(); err != nil {
				t.Error(err)
			}
		}
	}
	bump := func(d *Record) error {
		d.Description += "x"
		return nil
	}
	wg.Add(2)
	go add(func() error { _, err := ks.Update(t.Context(), ByName("alpha"), bump); return err })
	go add(func() error { _, err := s.Update(t.Context(), ByName("alpha"), bump); return err })
	wg.Wait()
	got, err := ks.Get(t.Context(), ByName("alpha"))
	if err != nil || strings.Count(got.Description, "x") != 2*each {
		t.Errorf("after %d concurrent updates through each: %q, %v", each, got.Description, err)
	}

	if _, err := ks.Delete(t.Context(), ByName("alpha"), nil); err != nil {
		t.Fatal(err)
	}
	if n := keyCount(t, s); n != 0 {
		t.Errorf("%d keys left after Delete", n)
	}
	if _, err := ks.Delete(t.Context(), ByName("alpha"), nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete of a deleted record: %v", err)
	}
}

// Repair fixes what it can prove and leaves the rest to Check: after it, Check reports
// exactly the problems no repair could prove.
func TestRepair(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s, ks := openStore(t, e, ""), connect(t, e, "")
	a, b := newRecord("alpha"), newRecord("beta")
	for _, d := range []Record{a, b} {
		if err := s.Create(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	cli, k := s.Client(), s.keys
	put := func(key, value string) {
		if _, err := cli.Put(t.Context(), key, value); err != nil {
			t.Fatal(err)
		}
	}
	ghost := k.hashedKey(tokensDir, hashSecret("ghost-token"))
	put(ghost, "nobody")                               // no record: deleted
	stray := k.hashedKey(reclaimDir, hashSecret("rt")) // alpha holds no such token: deleted
	put(stray, "alpha")
	if _, err := cli.Delete(t.Context(), k.token(a.Token)); err != nil { // missing: created
		t.Fatal(err)
	}
	put(k.token(b.Token), "alpha") // beta's index pointing at alpha: deleted, then created for beta
	twin := newRecord("twin")      // holds alpha's token too: which is the owner? Left.
	twin.Token = a.Token
	twinJSON, _ := json.Marshal(twin)
	put(k.name("twin"), string(twinJSON))
	put(k.name("broken"), "{") // damaged record: left
	brokenIndex := k.hashedKey(tokensDir, hashSecret("broken-token"))
	put(brokenIndex, "broken") // points at a damaged record: left

	fixed, err := ks.Repair(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		k.token(b.Token) + `: deleted (pointed at "alpha", which does not hold it)`,
		k.token(b.Token) + `: created for the API token of "beta"`,
		ghost + `: deleted (pointed at "nobody", which does not hold it)`,
		stray + `: deleted (pointed at "alpha", which does not hold it)`,
		k.token(a.Token) + `: created for the API token of "alpha"`,
	}
	slices.Sort(fixed)
	slices.Sort(want)
	if !slices.Equal(fixed, want) {
		t.Errorf("fixed:\n%s\nwant:\n%s", strings.Join(fixed, "\n"), strings.Join(want, "\n"))
	}
	problems, err := ks.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 2 || !strings.HasPrefix(problems[0], k.name("broken")+": record is not valid JSON") ||
		problems[1] != k.name("twin")+": index "+k.token(a.Token)+` for its API token points at "alpha"` {
		t.Errorf("left after Repair:\n%s", strings.Join(problems, "\n"))
	}
	if again, err := ks.Repair(t.Context()); err != nil || len(again) != 0 {
		t.Errorf("second Repair fixed %v, %v; want nothing", again, err)
	}
	if got, err := s.Get(t.Context(), ByToken(a.Token)); err != nil || got.Name != "alpha" {
		t.Errorf("alpha by its re-created index: %v", err)
	}

	if _, err := ks.Get(t.Context(), ByName("broken")); !errors.Is(err, ErrDamaged) {
		t.Errorf("Get of a damaged record: %v, want ErrDamaged", err)
	}
	if err := ks.DeleteDamaged(t.Context(), "alpha"); err == nil {
		t.Error("DeleteDamaged deleted a record that parses")
	}
	if err := ks.DeleteDamaged(t.Context(), "broken"); err != nil {
		t.Fatal(err)
	}
	if fixed, err := ks.Repair(t.Context()); err != nil || len(fixed) != 1 || !strings.HasPrefix(fixed[0], brokenIndex) {
		t.Errorf("Repair after DeleteDamaged: %v, %v", fixed, err)
	}
}

// RestoreSnapshot refuses a damaged snapshot and an existing directory, creating nothing.
func TestRestoreSnapshotRefuses(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s := openStore(t, e, "")
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	f, err := os.OpenFile(good, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(good)
	b[len(b)/2] ^= 1
	damaged := filepath.Join(dir, "damaged.db")
	os.WriteFile(damaged, b, 0o600)
	short := filepath.Join(dir, "short.db")
	os.WriteFile(short, []byte("x"), 0o600)
	for _, tt := range []struct{ file, target, want string }{
		{damaged, filepath.Join(dir, "a"), "does not match its SHA-256"},
		{short, filepath.Join(dir, "b"), "too short"},
		{good, dir, "exists already"},
	} {
		err := RestoreSnapshot(tt.file, tt.target)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("restore %s into %s: %v, want %q", filepath.Base(tt.file), tt.target, err, tt.want)
		}
		if tt.target != dir {
			if _, err := os.Stat(tt.target); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused restore created %s", tt.target)
			}
		}
	}
	if err := RestoreSnapshot(good, filepath.Join(dir, "ok")); err != nil {
		t.Errorf("good snapshot: %v", err)
	}
}

// Disabling is stored with the record, read back, and leaves nothing behind when undone.
func TestDisabledRoundTrip(t *testing.T) {
	d := newRecord("alpha")
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d.Disable("abuse", since)
	b, err := json.Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	back, err := parseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if reason, at, ok := back.Disabled(); !ok || reason != "abuse" || !at.Equal(since) || !back.IsDisabled() {
		t.Errorf("read back %q %v %v from %s", reason, at, ok, b)
	}
	now := time.Now()
	back.Enable(now)
	if back.Pending != nil || back.IsDisabled() || !back.LastPing.Equal(now) {
		t.Errorf("after Enable: pending %+v, disabled %v, last ping %v", back.Pending, back.IsDisabled(), back.LastPing)
	}
	if _, _, ok := (&Record{}).Disabled(); ok {
		t.Error("a new record reads as disabled")
	}
}
