package etcdstore

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestAddChallenge(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type add struct {
		value string
		at    int
	}
	tests := []struct {
		name string
		keep int
		adds []add
		want []Challenge
	}{
		{"first", 3, []add{{"a", 0}}, []Challenge{{"a", at(0)}}},
		{"newest first", 3, []add{{"a", 0}, {"b", 1}}, []Challenge{{"b", at(1)}, {"a", at(0)}}},
		{"same value refreshed, not duplicated", 3, []add{{"a", 0}, {"b", 1}, {"a", 2}},
			[]Challenge{{"a", at(2)}, {"b", at(1)}}},
		{"oldest dropped beyond keep", 2, []add{{"a", 0}, {"b", 1}, {"c", 2}},
			[]Challenge{{"c", at(2)}, {"b", at(1)}}},
		{"refresh of a dropped value adds it back", 2, []add{{"a", 0}, {"b", 1}, {"c", 2}, {"a", 3}},
			[]Challenge{{"a", at(3)}, {"c", at(2)}}},
		{"keep 1 holds only the latest", 1, []add{{"a", 0}, {"b", 1}}, []Challenge{{"b", at(1)}}},
		{"keep 0 still holds the value just set", 0, []add{{"a", 0}, {"b", 1}}, []Challenge{{"b", at(1)}}},
		{"negative keep still holds the value just set", -1, []add{{"a", 0}, {"b", 1}}, []Challenge{{"b", at(1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Record
			for _, a := range tt.adds {
				d.AddChallenge(a.value, at(a.at), tt.keep)
			}
			if !slices.Equal(d.Challenges, tt.want) {
				t.Errorf("challenges = %v, want %v", d.Challenges, tt.want)
			}
		})
	}
}

func TestAddChallengeLeavesOldSliceAlone(t *testing.T) {
	t0 := time.Now()
	var d Record
	d.AddChallenge("a", t0, 3)
	d.AddChallenge("b", t0, 3)
	before := d.Challenges
	saved := slices.Clone(before)
	d.AddChallenge("a", t0.Add(time.Second), 3)
	if !slices.Equal(before, saved) {
		t.Errorf("AddChallenge changed the previous slice: %v, was %v", before, saved)
	}
}

func TestLiveChallenges(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := Record{Challenges: []Challenge{
		{"new", now.Add(-time.Minute)},
		{"edge", now.Add(-time.Hour + time.Nanosecond)},
		{"expired", now.Add(-time.Hour)},
		{"old", now.Add(-48 * time.Hour)},
	}}
	tests := []struct {
		name   string
		maxAge time.Duration
		want   []string
	}{
		{"no limit", 0, []string{"new", "edge", "expired", "old"}},
		{"negative is no limit", -time.Second, []string{"new", "edge", "expired", "old"}},
		{"one hour: exactly an hour old has expired", time.Hour, []string{"new", "edge"}},
		{"one minute: exactly a minute old has expired", time.Minute, nil},
		{"a day", 24 * time.Hour, []string{"new", "edge", "expired"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := d.LiveChallenges(now, tt.maxAge); !slices.Equal(got, tt.want) {
				t.Errorf("LiveChallenges(%v) = %v, want %v", tt.maxAge, got, tt.want)
			}
		})
	}
	if got := (&Record{}).LiveChallenges(now, time.Hour); got != nil {
		t.Errorf("no challenges: got %v", got)
	}
}

func TestSetAddr(t *testing.T) {
	var d Record
	d.SetAddr(netip.MustParseAddr("::ffff:192.0.2.1"))
	d.SetAddr(netip.MustParseAddr("2001:db8::1"))
	d.SetAddr(netip.Addr{})
	if d.IPv4 != netip.MustParseAddr("192.0.2.1") || d.IPv6 != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("IPv4 %v IPv6 %v", d.IPv4, d.IPv6)
	}
}

func TestReclamationTokenValid(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		add  map[string]time.Time // tokens added, in no particular order
		try  string
		want bool
	}{
		{"right token before expiry", map[string]time.Time{"rt": now.Add(time.Hour)}, "rt", true},
		{"right token at expiry", map[string]time.Time{"rt": now}, "rt", false},
		{"right token after expiry", map[string]time.Time{"rt": now.Add(-time.Hour)}, "rt", false},
		{"wrong token", map[string]time.Time{"rt": now.Add(time.Hour)}, "other", false},
		{"one of several", map[string]time.Time{"a": now.Add(time.Hour), "b": now.Add(time.Hour)}, "a", true},
		{"expired one of several", map[string]time.Time{"a": now.Add(-time.Hour), "b": now.Add(time.Hour)}, "a", false},
		{"empty token, none set", nil, "", false},
		{"empty token set, empty token tried", map[string]time.Time{"": now.Add(time.Hour)}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Record
			for rt, exp := range tt.add {
				d.AddReclamationToken(rt, exp)
			}
			if got := d.ReclamationTokenValid(tt.try, now); got != tt.want {
				t.Errorf("ReclamationTokenValid = %v, want %v", got, tt.want)
			}
			// Using a token does not spend it.
			if got := d.ReclamationTokenValid(tt.try, now); got != tt.want {
				t.Errorf("second ReclamationTokenValid = %v, want %v", got, tt.want)
			}
		})
	}
	var d Record
	d.AddReclamationToken("rt", now.Add(time.Hour))
	d.ClearReclamationTokens()
	if d.ReclamationTokenValid("rt", now) || len(d.ReclamationTokens()) != 0 || d.Pending != nil {
		t.Errorf("after ClearReclamationTokens: %+v", d)
	}
}

func TestAddReclamationTokenKeepsTheNewest(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var d Record
	for i := range MaxReclamationTokens + 2 {
		d.AddReclamationToken(fmt.Sprint("rt", i), t0.Add(time.Duration(i)*time.Hour))
	}
	var want []Reclamation
	for i := MaxReclamationTokens + 1; i >= 2; i-- {
		want = append(want, Reclamation{hashSecret(fmt.Sprint("rt", i)), t0.Add(time.Duration(i) * time.Hour)})
	}
	if got := d.ReclamationTokens(); !slices.Equal(got, want) {
		t.Errorf("tokens %v, want %v", got, want)
	}
	// Adding one already there renews it in first place instead of listing it twice.
	d.AddReclamationToken("rt2", t0.Add(9*time.Hour))
	want = append([]Reclamation{{hashSecret("rt2"), t0.Add(9 * time.Hour)}}, want[:len(want)-1]...)
	if got := d.ReclamationTokens(); !slices.Equal(got, want) {
		t.Errorf("after renewing rt2: %v, want %v", got, want)
	}

	// rt4 expires at 4h exactly, rt3 before: only rt2 (9h) is left.
	d.DropExpiredReclamationTokens(t0.Add(4 * time.Hour))
	want = want[:1]
	if got := d.ReclamationTokens(); !slices.Equal(got, want) {
		t.Errorf("after dropping those expired at 4h: %v, want %v", got, want)
	}
	d.DropExpiredReclamationTokens(t0.Add(9 * time.Hour))
	if d.Pending != nil {
		t.Errorf("every token expired, yet Pending is %+v", *d.Pending)
	}
}

func TestSelectorMatches(t *testing.T) {
	d := Record{Name: "alpha", Token: "tok"}
	d.AddReclamationToken("rt", time.Now().Add(time.Hour))
	d.AddReclamationToken("rt2", time.Now().Add(-time.Hour))
	d.SetVerification("vid", time.Now().Add(time.Hour))
	blank := Record{}
	blank.AddReclamationToken("", time.Now().Add(time.Hour))
	blank.SetVerification("", time.Now().Add(time.Hour))
	tests := []struct {
		name string
		sel  Selector
		d    *Record
		want bool
	}{
		{"name", ByName("alpha"), &d, true},
		{"other name", ByName("beta"), &d, false},
		{"token", ByToken("tok"), &d, true},
		{"wrong token", ByToken("tok2"), &d, false},
		{"reclamation token", ByReclamationToken("rt"), &d, true},
		{"expired reclamation token still selects", ByReclamationToken("rt2"), &d, true},
		{"token is no reclamation token", ByReclamationToken("tok"), &d, false},
		{"verification id", ByVerificationID("vid"), &d, true},
		{"reclamation token is no verification id", ByVerificationID("rt"), &d, false},
		{"empty name, nameless record", ByName(""), &blank, false},
		{"empty token, tokenless record", ByToken(""), &blank, false},
		{"empty reclamation token, hash of empty set", ByReclamationToken(""), &blank, false},
		{"empty verification id, hash of empty set", ByVerificationID(""), &blank, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sel.matches(tt.d); got != tt.want {
				t.Errorf("matches = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestContactEmail(t *testing.T) {
	var d Record
	if d.EmailVerified() {
		t.Error("no address, yet verified")
	}
	d.SetEmail("a@example.org", false)
	if d.Email != "a@example.org" || d.EmailVerified() {
		t.Errorf("unverified contact: %q verified %v", d.Email, d.EmailVerified())
	}
	d.SetEmail(d.Email, true)
	if !d.EmailVerified() {
		t.Error("marked verified, reads unverified")
	}
	d.SetEmail("", true)
	if d.Email != "" || d.EmailVerified() || d.EmailUnverified {
		t.Errorf("removed contact: %q verified %v unverified %v", d.Email, d.EmailVerified(), d.EmailUnverified)
	}
}

func TestVerification(t *testing.T) {
	var d Record
	exp := time.Now().Add(time.Hour)
	d.SetVerification("vid", exp)
	if h, e := d.Verification(); h != hashSecret("vid") || !e.Equal(exp) {
		t.Errorf("after SetVerification: %q %v", h, e)
	}
	d.ClearVerification()
	if h, e := d.Verification(); h != "" || !e.IsZero() || d.Pending != nil {
		t.Errorf("after ClearVerification: %q %v %+v", h, e, d.Pending)
	}
}

// Records of the view are copied before a change, and the copy shares their Pending: setting
// or clearing on the copy must leave the original alone.
func TestPendingCopiedOnWrite(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	orig := &Record{Name: "gw"}
	orig.SetVerification("vid", exp)
	orig.AddReclamationToken("rt", exp)
	orig.AddReclamationToken("rt2", exp)
	before := *orig.Pending
	beforeTokens := slices.Clone(before.Reclamations)

	cp := *orig
	cp.SetVerification("vid2", exp)
	cp.AddReclamationToken("rt3", exp)
	cp.DropExpiredReclamationTokens(exp.Add(-time.Minute))
	if h, _ := orig.Verification(); h != hashSecret("vid") || !slices.Equal(orig.ReclamationTokens(), beforeTokens) {
		t.Errorf("changing a copy changed the original: %+v, was %+v", *orig.Pending, before)
	}
	cp.DropExpiredReclamationTokens(exp)
	if !slices.Equal(orig.ReclamationTokens(), beforeTokens) || len(cp.ReclamationTokens()) != 0 {
		t.Errorf("copy %+v, original %+v", cp.Pending, orig.Pending)
	}
	cp.ClearVerification()
	if cp.Pending != nil {
		t.Errorf("nothing pending, yet Pending is %+v", *cp.Pending)
	}
}

// The stored JSON is one flat object: a record with nothing pending has none of its keys,
// and one with something pending has them beside the rest.
func TestPendingJSON(t *testing.T) {
	d := Record{Name: "gw", Token: "t"}
	b, err := json.Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "pending") || strings.Contains(string(b), "reclam") || strings.Contains(string(b), "verif") || strings.Contains(string(b), "email") {
		t.Errorf("nothing pending, stored as %s", b)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil || back.Pending != nil {
		t.Errorf("read back: %v, Pending %+v", err, back.Pending)
	}

	exp := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	d.SetEmail("a@example.org", false)
	d.SetVerification("vid", exp)
	d.AddReclamationToken("rt", exp)
	b, _ = json.Marshal(&d)
	var flat map[string]any
	if err := json.Unmarshal(b, &flat); err != nil {
		t.Fatal(err)
	}
	reclamations, _ := json.Marshal(flat["reclamations"])
	if flat["email"] != "a@example.org" || flat["email_unverified"] != true || flat["verify_hash"] != hashSecret("vid") ||
		flat["verify_expires"] != "2026-11-27T00:00:00Z" || flat["name"] != "gw" ||
		string(reclamations) != `[{"expires":"2026-11-27T00:00:00Z","hash":"`+hashSecret("rt")+`"}]` {
		t.Errorf("stored as %s", b)
	}
}

// Records written by earlier versions read as this version keeps the same facts: the
// verified address, a pending address as the unverified contact with its verification still
// pending, and the one reclamation token as a list of one.
func TestDecodeEarlierRecords(t *testing.T) {
	exp := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	h := strings.Repeat("ab", 32)
	tests := []struct {
		name, stored string
		email        string
		verified     bool
		verify       string
		tokens       []Reclamation
	}{
		{"verified address", `{"name":"gw","token":"t","description":"","mode":1,"created":"2026-01-01T00:00:00Z","email":"a@example.org"}`,
			"a@example.org", true, "", nil},
		{"pending address", `{"name":"gw","token":"t","description":"","mode":1,"created":"2026-01-01T00:00:00Z","pending_email":"b@example.org","verify_hash":"` + h + `","verify_expires":"2026-11-27T00:00:00Z"}`,
			"b@example.org", false, h, nil},
		{"verified and pending address", `{"name":"gw","token":"t","description":"","mode":1,"created":"2026-01-01T00:00:00Z","email":"a@example.org","pending_email":"b@example.org","verify_hash":"` + h + `","verify_expires":"2026-11-27T00:00:00Z"}`,
			"b@example.org", false, h, nil},
		{"reclamation token", `{"name":"gw","token":"t","description":"","mode":1,"created":"2026-01-01T00:00:00Z","email":"a@example.org","reclaim_hash":"` + h + `","reclaim_expires":"2026-11-27T00:00:00Z"}`,
			"a@example.org", true, "", []Reclamation{{h, exp}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for decoder, decode := range map[string]func([]byte, *Record) error{
				"view":          decodeRecord,
				"encoding/json": func(b []byte, d *Record) error { err := json.Unmarshal(b, d); d.upgrade(); return err },
			} {
				var d Record
				if err := decode([]byte(tt.stored), &d); err != nil {
					t.Fatalf("%s: %v", decoder, err)
				}
				vh, _ := d.Verification()
				if d.Email != tt.email || d.EmailVerified() != tt.verified || vh != tt.verify || !slices.Equal(d.ReclamationTokens(), tt.tokens) || d.Mode != ModeDynamic {
					t.Errorf("%s: email %q verified %v verification %q tokens %v; want %q %v %q %v", decoder, d.Email, d.EmailVerified(), vh, d.ReclamationTokens(), tt.email, tt.verified, tt.verify, tt.tokens)
				}
				if p := d.pendingCopy(); p.LegacyPendingEmail != "" || p.LegacyReclaimHash != "" || !p.LegacyReclaimExpires.IsZero() {
					t.Errorf("%s: earlier fields left in place: %+v", decoder, p)
				}
				// Written back, the record is in this version's form and reads the same.
				b, _ := json.Marshal(&d)
				var again Record
				if err := decodeRecord(b, &again); err != nil || !reflect.DeepEqual(again, d) {
					t.Errorf("%s: rewritten as %s, reads as %+v", decoder, b, again)
				}
			}
		})
	}
}

// The view holds one record per registered name: what few records carry stays behind the
// Pending pointer, so that a million names stay within the memory the README states.
func TestRecordSize(t *testing.T) {
	if size := unsafe.Sizeof(Record{}); unsafe.Sizeof(uintptr(0)) == 8 && size > 224 {
		t.Errorf("a record takes %d bytes in the view, more than 224", size)
	}
}
