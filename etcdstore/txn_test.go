package etcdstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// withSecrets is d with a contact address, a reclamation token and a pending verification.
func withSecrets(d Record, rt, vid string) Record {
	exp := time.Now().Add(time.Hour)
	d.SetEmail("owner@example.org", false)
	d.AddReclamationToken(rt, exp)
	d.SetVerification(vid, exp)
	return d
}

// mustJSON is d as stored: what two records must share to hold the same facts.
func mustJSON(t *testing.T, d Record) string {
	t.Helper()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGetBySelector(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	alpha := withSecrets(newRecord("alpha"), "alpha-rt", "alpha-vid")
	beta := withSecrets(newRecord("beta"), "beta-rt", "beta-vid")
	for _, d := range []Record{alpha, beta} {
		if err := s.Create(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	assertConsistent(t, s)

	tests := []struct {
		name string
		sel  Selector
		want string // "" for ErrNotFound
	}{
		{"name", ByName("alpha"), "alpha"},
		{"token", ByToken(alpha.Token), "alpha"},
		{"reclamation token", ByReclamationToken("alpha-rt"), "alpha"},
		{"verification id", ByVerificationID("alpha-vid"), "alpha"},
		{"other record's token", ByToken(beta.Token), "beta"},
		{"other record's verification id", ByVerificationID("beta-vid"), "beta"},
		{"unknown name", ByName("gamma"), ""},
		{"name differs in case", ByName("Alpha"), ""},
		{"unknown token", ByToken("no-such-token"), ""},
		{"name as token", ByToken("alpha"), ""},
		{"token as reclamation token", ByReclamationToken(alpha.Token), ""},
		{"reclamation token as token", ByToken("alpha-rt"), ""},
		{"verification id as reclamation token", ByReclamationToken("alpha-vid"), ""},
		{"hash of token as token", ByToken(hashSecret(alpha.Token)), ""},
		{"empty name", ByName(""), ""},
		{"empty token", ByToken(""), ""},
		{"empty reclamation token", ByReclamationToken(""), ""},
		{"empty verification id", ByVerificationID(""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := s.Get(t.Context(), tt.sel)
			if tt.want == "" {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("Get = %q, %v; want ErrNotFound", d.Name, err)
				}
				return
			}
			if err != nil || d.Name != tt.want {
				t.Errorf("Get = %q, %v; want %q", d.Name, err, tt.want)
			}
		})
	}

	t.Run("empty selectors change nothing", func(t *testing.T) {
		for _, sel := range []Selector{ByName(""), ByToken(""), ByReclamationToken(""), ByVerificationID("")} {
			if _, err := s.Update(t.Context(), sel, func(*Record) error { return nil }); !errors.Is(err, ErrNotFound) {
				t.Errorf("Update(%v) = %v, want ErrNotFound", sel, err)
			}
			if _, err := s.Delete(t.Context(), sel, nil); !errors.Is(err, ErrNotFound) {
				t.Errorf("Delete(%v) = %v, want ErrNotFound", sel, err)
			}
		}
	})
}

func TestCreateNameTaken(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	first, second := newRecord("alpha"), newRecord("alpha")
	if err := s.Create(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(t.Context(), second); !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second Create = %v, want ErrNameTaken", err)
	}
	if d, err := s.Get(t.Context(), ByToken(first.Token)); err != nil || d.Name != "alpha" {
		t.Errorf("first token: %q, %v", d.Name, err)
	}
	if _, err := s.Get(t.Context(), ByToken(second.Token)); !errors.Is(err, ErrNotFound) {
		t.Errorf("losing token: %v, want ErrNotFound", err)
	}
	if n := keyCount(t, s); n != 2 {
		t.Errorf("%d keys, want the record and its token index", n)
	}
	assertConsistent(t, s)
}

func TestCreateRace(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	replicas := []*Store{openStore(t, e, ""), openStore(t, e, "")}
	tests := []struct {
		name   string
		stores []*Store
	}{
		{"goroutines of one store", replicas[:1]},
		{"two replicas", replicas},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const racers = 16
			name := fmt.Sprintf("race%d", i)
			tokens := make([]string, racers)
			errs := make([]error, racers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for r := range racers {
				d := newRecord(name)
				tokens[r] = d.Token
				s := tt.stores[r%len(tt.stores)]
				wg.Go(func() {
					<-start
					errs[r] = s.Create(t.Context(), d)
				})
			}
			close(start)
			wg.Wait()

			winner := -1
			for r, err := range errs {
				switch {
				case err == nil && winner >= 0:
					t.Errorf("racers %d and %d both created %s", winner, r, name)
				case err == nil:
					winner = r
				case !errors.Is(err, ErrNameTaken):
					t.Errorf("racer %d: %v, want nil or ErrNameTaken", r, err)
				}
			}
			if winner < 0 {
				t.Fatal("no racer won")
			}
			for _, s := range tt.stores {
				d, err := s.Get(t.Context(), ByName(name))
				if err != nil || d.Token != tokens[winner] {
					t.Errorf("stored record does not carry the winner's token: %v", err)
				}
				for r, tok := range tokens {
					if _, err := s.Get(t.Context(), ByToken(tok)); (r == winner) != (err == nil) {
						t.Errorf("racer %d's token: %v", r, err)
					}
				}
				if v, ok := s.View().Lookup(name); s == tt.stores[winner%len(tt.stores)] && (!ok || v.Token != tokens[winner]) {
					t.Errorf("winner's view does not show its record")
				}
			}
			assertConsistent(t, tt.stores[0])
		})
	}
}

func TestUpdateMovesIndexes(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	d := newRecord("alpha")
	if err := s.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	oldToken, newToken := d.Token, "rotated-token"
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name  string
		sel   Selector
		fn    func(*Record)
		found []Selector
		gone  []Selector
		keys  int64
	}{
		{"rotate token", ByToken(oldToken), func(d *Record) { d.Token = newToken },
			[]Selector{ByToken(newToken)}, []Selector{ByToken(oldToken)}, 2},
		{"add reclamation token", ByName("alpha"), func(d *Record) { d.AddReclamationToken("rt1", exp) },
			[]Selector{ByReclamationToken("rt1"), ByToken(newToken)}, nil, 3},
		{"add a second reclamation token", ByReclamationToken("rt1"), func(d *Record) { d.AddReclamationToken("rt2", exp) },
			[]Selector{ByReclamationToken("rt2"), ByReclamationToken("rt1")}, nil, 4},
		{"add a third and a fourth: the first goes", ByName("alpha"), func(d *Record) {
			d.AddReclamationToken("rt3", exp)
			d.AddReclamationToken("rt4", exp)
		}, []Selector{ByReclamationToken("rt2"), ByReclamationToken("rt3"), ByReclamationToken("rt4")}, []Selector{ByReclamationToken("rt1")}, 5},
		{"set verification", ByToken(newToken), func(d *Record) { d.SetEmail("a@example.org", false); d.SetVerification("vid1", exp) },
			[]Selector{ByVerificationID("vid1"), ByReclamationToken("rt2")}, nil, 6},
		{"replace verification", ByVerificationID("vid1"), func(d *Record) { d.SetEmail("b@example.org", false); d.SetVerification("vid2", exp) },
			[]Selector{ByVerificationID("vid2")}, []Selector{ByVerificationID("vid1")}, 6},
		{"drop one reclamation token, keep the others", ByName("alpha"), func(d *Record) {
			d.ClearReclamationTokens()
			d.AddReclamationToken("rt3", exp)
			d.AddReclamationToken("rt4", exp)
		}, []Selector{ByReclamationToken("rt3"), ByReclamationToken("rt4")}, []Selector{ByReclamationToken("rt2")}, 5},
		{"clear reclamation tokens", ByName("alpha"), func(d *Record) { d.ClearReclamationTokens() },
			[]Selector{ByVerificationID("vid2")}, []Selector{ByReclamationToken("rt3"), ByReclamationToken("rt4")}, 3},
		{"verify email", ByVerificationID("vid2"), func(d *Record) { d.SetEmail(d.Email, true); d.ClearVerification() },
			[]Selector{ByToken(newToken)}, []Selector{ByVerificationID("vid2")}, 2},
		{"change that moves no index", ByToken(newToken), func(d *Record) { d.Description = "moved house" },
			[]Selector{ByToken(newToken), ByName("alpha")}, []Selector{ByToken(oldToken)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Update(t.Context(), tt.sel, func(d *Record) error { tt.fn(d); return nil })
			if err != nil {
				t.Fatal(err)
			}
			want, _ := s.Get(t.Context(), ByName("alpha"))
			if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
				t.Errorf("Update returned %+v, stored is %+v", got, want)
			}
			for _, sel := range tt.found {
				if _, err := s.Get(t.Context(), sel); err != nil {
					t.Errorf("Get(%v): %v", sel, err)
				}
			}
			for _, sel := range tt.gone {
				if _, err := s.Get(t.Context(), sel); !errors.Is(err, ErrNotFound) {
					t.Errorf("Get(%v) = %v, want ErrNotFound", sel, err)
				}
			}
			if n := keyCount(t, s); n != tt.keys {
				t.Errorf("%d keys, want %d", n, tt.keys)
			}
			assertConsistent(t, s)
		})
	}
	if d, _ := s.Get(t.Context(), ByName("alpha")); d.Email != "b@example.org" || !d.EmailVerified() || d.Description != "moved house" {
		t.Errorf("final record %+v", d)
	}
}

func TestUpdateToTakenTokenConflicts(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	alpha, beta := newRecord("alpha"), newRecord("beta")
	for _, d := range []Record{alpha, beta} {
		if err := s.Create(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Update(t.Context(), ByName("alpha"), func(d *Record) error { d.Token = beta.Token; return nil })
	if !errors.Is(err, ErrConflict) {
		t.Errorf("Update to another record's token = %v, want ErrConflict", err)
	}
	if d, err := s.Get(t.Context(), ByToken(beta.Token)); err != nil || d.Name != "beta" {
		t.Errorf("beta's token now selects %q, %v", d.Name, err)
	}
	assertConsistent(t, s)
}

func TestDeleteRemovesRecordAndIndexes(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	d := withSecrets(newRecord("alpha"), "rt", "vid")
	keep := newRecord("beta")
	for _, d := range []Record{d, keep} {
		if err := s.Create(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	all := []Selector{ByName("alpha"), ByToken(d.Token), ByReclamationToken("rt"), ByVerificationID("vid")}

	errRefused := errors.New("refused")
	if _, err := s.Delete(t.Context(), ByToken(d.Token), func(*Record) error { return errRefused }); !errors.Is(err, errRefused) {
		t.Fatalf("Delete with a refusing check = %v", err)
	}
	for _, sel := range all {
		if _, err := s.Get(t.Context(), sel); err != nil {
			t.Errorf("after refused Delete, Get(%v): %v", sel, err)
		}
	}

	var checked string
	old, err := s.Delete(t.Context(), ByReclamationToken("rt"), func(d *Record) error { checked = d.Name; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if checked != "alpha" || old.Name != "alpha" || old.Token != d.Token {
		t.Errorf("check saw %q, Delete returned %+v", checked, old)
	}
	for _, sel := range all {
		if _, err := s.Get(t.Context(), sel); !errors.Is(err, ErrNotFound) {
			t.Errorf("after Delete, Get(%v) = %v, want ErrNotFound", sel, err)
		}
	}
	if n := keyCount(t, s); n != 2 {
		t.Errorf("%d keys left, want beta's 2", n)
	}
	if _, err := s.Delete(t.Context(), ByName("alpha"), nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	assertConsistent(t, s)

	if err := s.Create(t.Context(), newRecord("alpha")); err != nil {
		t.Errorf("name is not free again after Delete: %v", err)
	}
}

// Concurrent updates of one name all land, none lost and none refused: on one replica they
// wait their turn, and across replicas (two stores on one etcd) the losers retry.
func TestUpdateConcurrentNoLostUpdate(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	for _, tt := range []struct {
		name     string
		replicas int
		writers  int
	}{
		{"one replica", 1, 64},
		{"two replicas", 2, 32},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prefix := "/" + strings.ReplaceAll(tt.name, " ", "-") + "/"
			stores := make([]*Store, tt.replicas)
			for i := range stores {
				stores[i] = openStore(t, e, prefix)
			}
			if err := stores[0].Create(t.Context(), newRecord("alpha")); err != nil {
				t.Fatal(err)
			}
			before := counted(t, writeRetries)
			updateConcurrently(t, stores, tt.writers)
			// The tests run in parallel, so other tests' retries may count too; with two
			// replicas, there must be some.
			retries := counted(t, writeRetries) - before
			t.Logf("%d writers on %d replicas: %v retries", tt.writers, tt.replicas, retries)
			if tt.replicas > 1 && retries == 0 {
				t.Error("two replicas writing one name never retried: the cross-replica path was not tested")
			}
		})
	}
}

// updateConcurrently has writers add one challenge each to alpha at once, spread over stores,
// and checks that every one landed, in etcd and in every store's view.
func updateConcurrently(t *testing.T, stores []*Store, writers int) {
	t.Helper()
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			value := fmt.Sprintf("challenge-%02d", w)
			var got Record
			got, errs[w] = stores[w%len(stores)].Update(t.Context(), ByName("alpha"), func(d *Record) error {
				d.AddChallenge(value, time.Now(), writers)
				return nil
			})
			if errs[w] == nil && !slices.ContainsFunc(got.Challenges, func(c Challenge) bool { return c.Value == value }) {
				t.Errorf("writer %d: returned record lacks its challenge", w)
			}
		})
	}
	close(start)
	wg.Wait()

	var want []string
	for w, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
		want = append(want, fmt.Sprintf("challenge-%02d", w))
	}
	s := stores[0]
	d, err := s.Get(t.Context(), ByName("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	var stored []string
	for _, c := range d.Challenges {
		stored = append(stored, c.Value)
	}
	slices.Sort(stored)
	if !slices.Equal(stored, want) {
		t.Errorf("stored challenges %v, want all %d: %v", stored, writers, want)
	}
	for i, s := range stores {
		eventually(t, 5*time.Second, fmt.Sprintf("view %d shows every challenge", i), func() bool {
			v, ok := s.View().Lookup("alpha")
			return ok && len(v.Challenges) == writers
		})
	}
	assertConsistent(t, s)
}

func TestFailingUpdateWritesNothing(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	d := newRecord("alpha")
	if err := s.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	before := s.View().Revision()
	errInvalid := errors.New("invalid")
	_, err := s.Update(t.Context(), ByToken(d.Token), func(d *Record) error {
		d.Token = "new-token"
		d.AddReclamationToken("rt", time.Now().Add(time.Hour))
		d.Description = "changed"
		return errInvalid
	})
	if !errors.Is(err, errInvalid) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	resp, err := s.Client().Get(t.Context(), "any")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Revision != before {
		t.Errorf("etcd revision moved from %d to %d", before, resp.Header.Revision)
	}
	got, err := s.Get(t.Context(), ByToken(d.Token))
	if err != nil || got.Description != d.Description {
		t.Errorf("record after failed Update: %+v, %v", got, err)
	}
	for _, sel := range []Selector{ByToken("new-token"), ByReclamationToken("rt")} {
		if _, err := s.Get(t.Context(), sel); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%v) = %v, want ErrNotFound", sel, err)
		}
	}
	assertConsistent(t, s)
}

func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	writer, replica := openStore(t, e, ""), openStore(t, e, "")
	d := newRecord("alpha")
	tests := []struct {
		name  string
		write func() error
		want  string // the description the views must show; "" for no record
	}{
		{"create", func() error { return writer.Create(t.Context(), d) }, d.Description},
		{"update", func() error {
			_, err := writer.Update(t.Context(), ByToken(d.Token), func(d *Record) error { d.Description = "v2"; return nil })
			return err
		}, "v2"},
		{"delete", func() error { _, err := writer.Delete(t.Context(), ByToken(d.Token), nil); return err }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.write(); err != nil {
				t.Fatal(err)
			}
			got, ok := writer.View().Lookup("alpha")
			if ok != (tt.want != "") || ok && got.Description != tt.want {
				t.Errorf("writer's view right after the call: %v %+v, want %q", ok, got, tt.want)
			}
			if err := replica.View().WaitRevision(t.Context(), writer.View().Revision()); err != nil {
				t.Fatal(err)
			}
			got, ok = replica.View().Lookup("alpha")
			if ok != (tt.want != "") || ok && got.Description != tt.want {
				t.Errorf("replica's view: %v %+v, want %q", ok, got, tt.want)
			}
		})
	}
}

func TestUpdateCannotRename(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	d := newRecord("alpha")
	if err := s.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	before := s.View().Revision()
	calls := 0
	_, err := s.Update(t.Context(), ByName("alpha"), func(d *Record) error { calls++; d.Name = "beta"; return nil })
	if err == nil || isSentinel(err) {
		t.Errorf("renaming Update = %v, want an error that is not a retryable sentinel", err)
	}
	if calls != 1 {
		t.Errorf("fn ran %d times for a change that can never be written", calls)
	}
	if _, err := s.Get(t.Context(), ByName("beta")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(beta) = %v, want ErrNotFound", err)
	}
	if s.View().Revision() != before {
		t.Error("something was written")
	}
	assertConsistent(t, s)
}

// A record built with every secret, as an importer builds one, is created with every index.
func TestCreateWritesEveryIndex(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	exp := time.Now().Add(time.Hour)
	d := newRecord("alpha")
	d.SetEmail("owner@example.org", false)
	d.SetVerification("vid", exp)
	for _, rt := range []string{"rt1", "rt2", "rt3"} {
		d.AddReclamationToken(rt, exp)
	}
	if err := s.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	for _, sel := range []Selector{ByToken(d.Token), ByVerificationID("vid"), ByReclamationToken("rt1"), ByReclamationToken("rt2"), ByReclamationToken("rt3")} {
		got, err := s.Get(t.Context(), sel)
		if err != nil || mustJSON(t, got) != mustJSON(t, d) {
			t.Errorf("Get(%v) = %+v, %v", sel, got, err)
		}
	}
	if n := keyCount(t, s); n != 6 {
		t.Errorf("%d keys, want the record and 5 indexes", n)
	}
	assertConsistent(t, s)
	// A secret of another record blocks the create, and says so.
	other := newRecord("beta")
	other.AddReclamationToken("rt2", exp)
	sameToken := newRecord("gamma")
	sameToken.Token = d.Token
	for _, rec := range []Record{other, sameToken} {
		if err := s.Create(t.Context(), rec); !errors.Is(err, ErrSecretInUse) {
			t.Errorf("Create of %s with another record's secret = %v, want ErrSecretInUse", rec.Name, err)
		}
	}
	if err := s.Create(t.Context(), newRecord("alpha")); !errors.Is(err, ErrNameTaken) {
		t.Errorf("Create of a taken name = %v, want ErrNameTaken", err)
	}
	if n := keyCount(t, s); n != 6 {
		t.Errorf("%d keys after the refused creates, want 6", n)
	}
	assertConsistent(t, s)
}

// Records and indexes written by the previous version are found by their secrets, and the
// first change rewrites the record in this version's form without losing an index.
func TestEarlierRecordInStore(t *testing.T) {
	t.Parallel()
	s := openStore(t, startEtcd(t), "")
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	stored := fmt.Sprintf(`{"name":"alpha","token":"tok","description":"x","mode":0,"created":"2026-01-01T00:00:00Z",`+
		`"email":"old@example.org","pending_email":"new@example.org","verify_hash":%q,"verify_expires":%q,"reclaim_hash":%q,"reclaim_expires":%q}`,
		hashSecret("vid"), exp.Format(time.RFC3339), hashSecret("rt"), exp.Format(time.RFC3339))
	cli := s.Client()
	for k, v := range map[string]string{
		s.keys.name("alpha"): stored, s.keys.token("tok"): "alpha", s.keys.verify("vid"): "alpha", s.keys.reclaim("rt"): "alpha",
	} {
		if _, err := cli.Put(t.Context(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	assertConsistent(t, s)
	for _, sel := range []Selector{ByToken("tok"), ByVerificationID("vid"), ByReclamationToken("rt")} {
		d, err := s.Get(t.Context(), sel)
		if err != nil || d.Email != "new@example.org" || d.EmailVerified() || !d.ReclamationTokenValid("rt", time.Now()) {
			t.Errorf("Get(%v) = %+v, %v", sel, d, err)
		}
	}
	eventually(t, 5*time.Second, "the view shows the record", func() bool {
		d, ok := s.View().LookupToken("tok")
		return ok && d.Email == "new@example.org" && !d.EmailVerified() && d.ReclamationTokenValid("rt", time.Now())
	})
	if _, err := s.Update(t.Context(), ByToken("tok"), func(d *Record) error {
		d.AddReclamationToken("rt2", exp)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(t.Context(), s.keys.name("alpha"))
	if err != nil {
		t.Fatal(err)
	}
	if v := string(resp.Kvs[0].Value); strings.Contains(v, "pending_email") || strings.Contains(v, "reclaim_hash") || !strings.Contains(v, `"email_unverified":true`) {
		t.Errorf("rewritten as %s", v)
	}
	for _, sel := range []Selector{ByVerificationID("vid"), ByReclamationToken("rt"), ByReclamationToken("rt2")} {
		if _, err := s.Get(t.Context(), sel); err != nil {
			t.Errorf("after the rewrite, Get(%v): %v", sel, err)
		}
	}
	assertConsistent(t, s)
}
