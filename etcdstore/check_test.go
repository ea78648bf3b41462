package etcdstore

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestCheckDetectsDamage(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	const rawSecret = "123e4567-e89b-42d3-a456-426614174000"

	// Each case damages a store holding one sound record, good, with every kind of index.
	type damage struct {
		t    *testing.T
		cli  *clientv3.Client
		k    keys
		good Record
	}
	put := func(d damage, key, value string) {
		if _, err := d.cli.Put(d.t.Context(), key, value); err != nil {
			d.t.Fatal(err)
		}
	}
	del := func(d damage, key string) {
		if _, err := d.cli.Delete(d.t.Context(), key); err != nil {
			d.t.Fatal(err)
		}
	}
	putRecord := func(d damage, key string, rec Record) {
		val, err := json.Marshal(rec)
		if err != nil {
			d.t.Fatal(err)
		}
		put(d, key, string(val))
	}
	tests := []struct {
		name   string
		damage func(damage)
		want   []string // one substring per expected problem, with <prefix>, <token hash>, <rt hash>, <raw hash>
	}{
		{"none", func(damage) {}, nil},
		{"dangling token index", func(d damage) {
			put(d, d.k.token(rawSecret), "ghost")
		}, []string{`tokens/<raw hash>: points at "ghost", which has no record`}},
		{"record without its token index", func(d damage) {
			del(d, d.k.token(d.good.Token))
		}, []string{`names/good: no index <prefix>tokens/<token hash> for its API token`}},
		{"garbage record", func(d damage) {
			put(d, d.k.name("junk"), `{"name":"junk","token":`+rawSecret)
		}, []string{`names/junk: record is not valid JSON`}},
		{"empty record", func(d damage) {
			put(d, d.k.name("empty"), ``)
		}, []string{`names/empty: record is not valid JSON`}},
		{"index to an unreadable record is not reported twice", func(d damage) {
			put(d, d.k.name("junk"), `not json`)
			put(d, d.k.token(rawSecret), "junk")
		}, []string{`names/junk: record is not valid JSON`}},
		{"key name is not record name", func(d damage) {
			rec := newRecord("else")
			putRecord(d, d.k.name("other"), rec)
			put(d, d.k.token(rec.Token), "other")
		}, []string{`names/other: record is named "else"`}},
		{"reclamation token without index", func(d damage) {
			rec := d.good
			rec.ClearReclamationTokens()
			rec.AddReclamationToken(rawSecret, time.Now().Add(time.Hour))
			putRecord(d, d.k.name("good"), rec)
		}, []string{
			`names/good: no index <prefix>reclaim/<raw hash> for its reclamation token`,
			`reclaim/<rt hash>: points at "good", whose record has no reclamation token with this hash`,
		}},
		{"second reclamation token without index", func(d damage) {
			rec := d.good
			rec.AddReclamationToken(rawSecret, time.Now().Add(time.Hour))
			putRecord(d, d.k.name("good"), rec)
		}, []string{`names/good: no index <prefix>reclaim/<raw hash> for its reclamation token`}},
		{"verification index to a record without that id", func(d damage) {
			put(d, d.k.verify(rawSecret), "good")
		}, []string{`verify/<raw hash>: points at "good", whose record has no verification id with this hash`}},
		{"stale index left by a token rotation", func(d damage) {
			rec := d.good
			rec.Token = rawSecret
			putRecord(d, d.k.name("good"), rec)
			put(d, d.k.token(rawSecret), "good")
		}, []string{`tokens/<token hash>: points at "good", whose record has no API token with this hash`}},
		{"token index points at another record", func(d damage) {
			other := newRecord("other")
			putRecord(d, d.k.name("other"), other)
			put(d, d.k.token(other.Token), "other")
			put(d, d.k.token(d.good.Token), "other")
		}, []string{
			`names/good: index <prefix>tokens/<token hash> for its API token points at "other"`,
			`tokens/<token hash>: points at "other", whose record has no API token with this hash`,
		}},
		{"record without token", func(d damage) {
			putRecord(d, d.k.name("bare"), Record{Name: "bare"})
		}, []string{`names/bare: record has no API token`}},
		{"keys outside the known directories", func(d damage) {
			put(d, d.k.prefix+"tokens", "x")
			put(d, d.k.prefix+"old/"+rawSecret, "x")
			put(d, strings.TrimSuffix(d.k.prefix, "/"), "x")
		}, []string{`tokens: key outside`, `old/<redacted>: key outside`}},
		{"index key that is not a hash", func(d damage) {
			put(d, d.k.prefix+tokensDir+rawSecret, "good")
			put(d, d.k.prefix+reclaimDir, "good")
		}, []string{`tokens/<36 bytes>: index key is not a SHA-256 hash`, `reclaim/<0 bytes>: index key is not a SHA-256 hash`}},
		{"serial offset", func(d damage) {
			put(d, d.k.serial(), "4096")
		}, nil},
		{"serial offset that is not a number", func(d damage) {
			put(d, d.k.serial(), "-3")
		}, []string{`serial: serial offset "-3" is not a whole number`}},
		{"keys of other prefixes are not ours", func(d damage) {
			put(d, "/elsewhere/names/junk", "not json")
			put(d, strings.TrimSuffix(d.k.prefix, "/")+"-x/names/junk", "not json")
		}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, e, fmt.Sprintf("/case%d/", i))
			good := withSecrets(newRecord("good"), "good-rt", "good-vid")
			if err := s.Create(t.Context(), good); err != nil {
				t.Fatal(err)
			}
			tt.damage(damage{t, s.Client(), s.keys, good})
			problems, err := s.Check(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(problems, "\n")
			if len(problems) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%s", len(problems), len(tt.want), all)
			}
			for _, w := range tt.want {
				w = strings.NewReplacer(
					"<token hash>", hashSecret(good.Token),
					"<rt hash>", hashSecret("good-rt"),
					"<raw hash>", hashSecret(rawSecret),
					"<prefix>", s.keys.prefix,
				).Replace(w)
				if !strings.Contains(all, w) {
					t.Errorf("no problem contains %q; got:\n%s", w, all)
				}
			}
			for _, secret := range []string{good.Token, "good-rt", "good-vid", rawSecret} {
				if strings.Contains(all, secret) {
					t.Errorf("a problem shows the secret %q:\n%s", secret, all)
				}
			}
		})
	}
}

func TestCheckPages(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s := openStore(t, e, "")
	putRecords(t, s.Client(), s.keys, pageSize+10)
	if _, err := s.Client().Put(t.Context(), s.keys.token("dangling"), "gw99999"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client().Put(t.Context(), s.keys.name("gw00000"), "garbage"); err != nil {
		t.Fatal(err)
	}
	problems, err := s.Check(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The garbage record leaves its token index pointing at an unreadable record: not counted again.
	if len(problems) != 2 {
		t.Errorf("%d problems over %d keys, want 2:\n%s", len(problems), 2*(pageSize+10)+1, strings.Join(problems, "\n"))
	}
}
