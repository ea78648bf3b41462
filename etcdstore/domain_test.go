package etcdstore

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
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
			var d Domain
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
	var d Domain
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
	d := Domain{Challenges: []Challenge{
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
	if got := (&Domain{}).LiveChallenges(now, time.Hour); got != nil {
		t.Errorf("no challenges: got %v", got)
	}
}

func TestSetAddr(t *testing.T) {
	var d Domain
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
		name    string
		set     string
		expires time.Time
		try     string
		want    bool
	}{
		{"right token before expiry", "rt", now.Add(time.Hour), "rt", true},
		{"right token at expiry", "rt", now, "rt", false},
		{"right token after expiry", "rt", now.Add(-time.Hour), "rt", false},
		{"wrong token", "rt", now.Add(time.Hour), "other", false},
		{"empty token, none set", "", time.Time{}, "", false},
		{"empty token set, empty token tried", "", now.Add(time.Hour), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d Domain
			if !tt.expires.IsZero() {
				d.SetReclamationToken(tt.set, tt.expires)
			}
			if got := d.ReclamationTokenValid(tt.try, now); got != tt.want {
				t.Errorf("ReclamationTokenValid = %v, want %v", got, tt.want)
			}
		})
	}
	var d Domain
	d.SetReclamationToken("rt", now.Add(time.Hour))
	d.ClearReclamationToken()
	if d.ReclamationTokenValid("rt", now) || d.ReclaimHash() != "" || !d.ReclaimExpires().IsZero() {
		t.Errorf("after ClearReclamationToken: %+v", d)
	}
}

func TestSelectorMatches(t *testing.T) {
	d := Domain{Name: "alpha", Token: "tok"}
	d.SetReclamationToken("rt", time.Now().Add(time.Hour))
	d.SetVerification("a@example.org", "vid", time.Now().Add(time.Hour))
	blank := Domain{}
	blank.SetReclamationToken("", time.Now().Add(time.Hour))
	blank.SetVerification("", "", time.Now().Add(time.Hour))
	tests := []struct {
		name string
		sel  Selector
		d    *Domain
		want bool
	}{
		{"name", ByName("alpha"), &d, true},
		{"other name", ByName("beta"), &d, false},
		{"token", ByToken("tok"), &d, true},
		{"wrong token", ByToken("tok2"), &d, false},
		{"reclamation token", ByReclamationToken("rt"), &d, true},
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

func TestVerification(t *testing.T) {
	var d Domain
	exp := time.Now().Add(time.Hour)
	d.SetVerification("a@example.org", "vid", exp)
	if d.PendingEmail() != "a@example.org" || d.VerifyHash() != hashSecret("vid") || !d.VerifyExpires().Equal(exp) {
		t.Errorf("after SetVerification: %+v", d)
	}
	d.ClearVerification()
	if d.PendingEmail() != "" || d.VerifyHash() != "" || !d.VerifyExpires().IsZero() {
		t.Errorf("after ClearVerification: %+v", d)
	}
}

// Records of the view are copied before a change, and the copy shares their Pending: setting
// or clearing on the copy must leave the original alone.
func TestPendingCopiedOnWrite(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	orig := &Domain{Name: "gw"}
	orig.SetVerification("a@example.org", "vid", exp)
	orig.SetReclamationToken("rt", exp)
	before := *orig.Pending

	cp := *orig
	cp.SetVerification("b@example.org", "vid2", exp)
	cp.ClearReclamationToken()
	if *orig.Pending != before {
		t.Errorf("changing a copy changed the original: %+v, was %+v", *orig.Pending, before)
	}
	if cp.PendingEmail() != "b@example.org" || cp.ReclaimHash() != "" || orig.ReclaimHash() != hashSecret("rt") {
		t.Errorf("copy %+v, original %+v", cp.Pending, orig.Pending)
	}
	cp.ClearVerification()
	if cp.Pending != nil {
		t.Errorf("nothing pending, yet Pending is %+v", *cp.Pending)
	}
}

// The stored JSON is one flat object, as before Pending was split out: a record with nothing
// pending has none of its keys, and one with something pending has them beside the rest.
func TestPendingJSON(t *testing.T) {
	d := Domain{Name: "gw", Token: "t"}
	b, err := json.Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "pending") || strings.Contains(string(b), "reclaim") || strings.Contains(string(b), "verify") {
		t.Errorf("nothing pending, stored as %s", b)
	}
	var back Domain
	if err := json.Unmarshal(b, &back); err != nil || back.Pending != nil {
		t.Errorf("read back: %v, Pending %+v", err, back.Pending)
	}

	exp := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	d.SetVerification("a@example.org", "vid", exp)
	b, _ = json.Marshal(&d)
	var flat map[string]any
	if err := json.Unmarshal(b, &flat); err != nil {
		t.Fatal(err)
	}
	if flat["pending_email"] != "a@example.org" || flat["verify_hash"] != hashSecret("vid") || flat["verify_expires"] != "2026-11-27T00:00:00Z" || flat["name"] != "gw" {
		t.Errorf("stored as %s", b)
	}
	// A record written before the split reads the same.
	old := `{"name":"gw","token":"t","description":"","mode":1,"created":"2026-01-01T00:00:00Z","reclaim_hash":"h","reclaim_expires":"2026-11-27T00:00:00Z"}`
	if err := json.Unmarshal([]byte(old), &back); err != nil || back.ReclaimHash() != "h" || !back.ReclaimExpires().Equal(exp) || back.Mode != ModeDynamic || back.PendingEmail() != "" {
		t.Errorf("old record: %v, %+v", err, back)
	}
}
