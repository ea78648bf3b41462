package registry

import (
	"testing"
	"time"
)

// The signatures below were made by Debian's pagekite 1.5.2 (pagekite.proto.proto.signToken),
// the code a real backend signs with.
const kiteSecret = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"

func TestKiteSignatures(t *testing.T) {
	signedAt := time.Unix(1700000000, 0)
	tests := []struct {
		name  string
		rel   string
		now   time.Time
		valid bool
	}{
		{"plain", "abcd1234.fedcba98.12345678481eba18e060fac5f95716699dc1.http.demo.example.org", signedAt, true},
		{"wildcard kite with port", "abcd1234.fedcba98.12345678fc49243ecc3e44f613b4d1e4c7a5.https-443._any_.demo.example.org", signedAt, true},
		{"timestamped, same window", "abcd1234.fedcba98.t2345678b5b92fadb09b8e67f4a28287ec32.http.demo.example.org", signedAt, true},
		{"timestamped, next window", "abcd1234.fedcba98.t2345678b5b92fadb09b8e67f4a28287ec32.http.demo.example.org", signedAt.Add(10 * time.Minute), true},
		{"timestamped, two windows later", "abcd1234.fedcba98.t2345678b5b92fadb09b8e67f4a28287ec32.http.demo.example.org", signedAt.Add(20 * time.Minute), false},
		{"one digit wrong", "abcd1234.fedcba98.12345678481eba18e060fac5f95716699dc2.http.demo.example.org", signedAt, false},
		{"other srand", "abcd1235.fedcba98.12345678481eba18e060fac5f95716699dc1.http.demo.example.org", signedAt, false},
		{"other proto", "abcd1234.fedcba98.12345678481eba18e060fac5f95716699dc1.https.demo.example.org", signedAt, false},
		{"signature for the name, used for the wildcard", "abcd1234.fedcba98.12345678481eba18e060fac5f95716699dc1.http._any_.demo.example.org", signedAt, false},
		{"short signature", "abcd1234.fedcba98.12345678481e.http.demo.example.org", signedAt, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, ok := parseKite(tc.rel, "example.org")
			if !ok {
				t.Fatalf("%s did not parse as a kite query", tc.rel)
			}
			if q.name != "demo" {
				t.Errorf("kite name %q, want demo", q.name)
			}
			if got := q.verify(kiteSecret, tc.now); got != tc.valid {
				t.Errorf("verify = %v, want %v", got, tc.valid)
			}
			if q.verify("", tc.now) {
				t.Error("an empty secret verified a signature")
			}
		})
	}
}

func TestParseKiteRejectsOtherShapes(t *testing.T) {
	for _, rel := range []string{
		"demo",
		"_acme-challenge.demo",
		"a.b.c.http.demo.other.org",     // kite outside the zone
		"a.b.c.demo.example.org",        // too few labels
		"a.b.c.http.x.demo.example.org", // a kite below a registered name
	} {
		if q, ok := parseKite(rel, "example.org"); ok {
			t.Errorf("%s parsed as %+v", rel, q)
		}
	}
}
