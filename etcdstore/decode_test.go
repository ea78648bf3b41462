package etcdstore

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// BenchmarkDecodeRecord decodes one stored record with encoding/json (the baseline) and with
// unmarshalRecord, which the view uses.
func BenchmarkDecodeRecord(b *testing.B) {
	rec, err := json.Marshal(fullRecord(2))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		fn   func([]byte, *Record) error
	}{
		{"encoding-json", func(b []byte, d *Record) error { return json.Unmarshal(b, d) }},
		{"view", unmarshalRecord},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var d Record
				if err := bc.fn(rec, &d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzDecodeRecord: whatever a record holds, the view's decoder reads what encoding/json
// wrote exactly as encoding/json reads it back.
func FuzzDecodeRecord(f *testing.F) {
	f.Add("gw1", "token", "gw1's server", uint8(1), true, "EU", []byte{192, 0, 2, 1}, "challenge", int64(1764000000), int64(5), "a@example.org", "b@example.org", "hash", uint8(2))
	f.Add("", "", "", uint8(0), false, "", []byte(nil), "", int64(0), int64(0), "", "", "", uint8(0))
	f.Add("ünï\u2028<>&\"\\", "\x00\x7f\xff", "\xed\xa0\x80", uint8(255), false, "\t", []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, "a\nb", int64(-62135596800), int64(1e9), "", "x", "", uint8(7))
	f.Fuzz(func(t *testing.T, name, token, desc string, mode uint8, optOut bool, cont string, ip []byte, value string, unix, nanos int64, email, pending, hash string, tokens uint8) {
		at := time.Unix(unix%(1<<35), nanos%1e9).UTC()
		d := Record{
			Name: name, Token: token, Description: desc, Mode: Mode(mode), OptOut: optOut, Continent: cont,
			Created: at, LastPing: at.Add(time.Second), Email: email, EmailUnverified: tokens%2 == 1,
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			d.SetAddr(addr)
		}
		if value != "" {
			d.AddChallenge(value, at, 2)
		}
		if pending != "" || hash != "" || tokens > 0 {
			// Reclamation tokens as this version writes them, and the fields of earlier
			// versions, which only the fuzzer still writes.
			p := &Pending{VerifyHash: hash, VerifyExpires: at, LegacyPendingEmail: pending, LegacyReclaimHash: hash}
			for i := range tokens % 5 {
				p.Reclamations = append(p.Reclamations, Reclamation{Hash: hash + pending[:min(int(i), len(pending))], Expires: at.Add(time.Duration(i) * time.Hour)})
			}
			d.Pending = p
		}
		b, err := json.Marshal(&d)
		if err != nil {
			return // not a record encoding/json can write (a year out of its range)
		}
		var want, got Record
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("encoding/json does not read its own %s: %v", b, err)
		}
		if err := unmarshalRecord(b, &got); err != nil {
			t.Fatalf("unmarshalRecord(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("record %s\n read as %+v (pending %+v)\n want    %+v (pending %+v)", b, got, got.Pending, want, want.Pending)
		}
	})
}
