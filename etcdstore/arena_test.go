package etcdstore

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func fullRecord(i int) Record {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	d := Record{
		Name: fmt.Sprintf("gw%d", i), Token: fmt.Sprintf("%08x-0000-4000-8000-000000000000", i),
		Description: fmt.Sprintf("gw%d's server", i), Mode: ModeDynamic, Continent: "EU",
		IPv4: netip.MustParseAddr("203.0.113.7"), IPv6: netip.MustParseAddr("2001:db8::7"),
		Created: now, LastPing: now.Add(time.Minute), Email: "a@example.org", EmailUnverified: i%2 == 0, OptOut: true,
		Pending: &Pending{VerifyHash: strings.Repeat("ab", 32), VerifyExpires: now.Add(time.Hour),
			Reclamations: []Reclamation{{strings.Repeat("cd", 32), now.Add(2 * time.Hour)}, {strings.Repeat("ef", 32), now.Add(time.Hour)}}},
	}
	for j := range i % 3 {
		d.AddChallenge(fmt.Sprintf("challenge-%d-%d", i, j), now, 2)
	}
	return d
}

// typicalRecord is fullRecord as most records of a large zone are: one in 64 carries
// something pending (a verification, reclamation tokens), the rest nothing.
func typicalRecord(i int) Record {
	d := fullRecord(i)
	if i%64 != 0 {
		d.Pending = nil
	}
	return d
}

// A base keeps every field of its records, whether in its arena or aside, across chunks,
// with no chunk's record or strings leaking into another's; what it hands out can be
// appended to without writing into the arena.
func TestBaseKeepsEveryField(t *testing.T) {
	n := 2*chunkBytes/300 + 10 // records of about 300 bytes: across chunk boundaries
	want := map[string]Record{}
	bl := newBuilder(n)
	for i := range n {
		d := typicalRecord(i)
		switch i {
		case 5:
			d.Description = strings.Repeat("x", maxCompactBytes) // too large for the arena
		case 6:
			d.IPv6 = netip.MustParseAddr("fe80::1%eth0") // a zone, which the arena has no place for
		case 7:
			d.Name = "not-its-key" // damaged
		}
		d.rev = int64(i + 1)
		key := fmt.Sprintf("gw%d", i)
		// Through JSON, as a load reads it, and into a Record the builder may not keep.
		b, _ := json.Marshal(d)
		var scratch Record
		if err := decodeRecord(b, &scratch); err != nil {
			t.Fatal(err)
		}
		scratch.rev = d.rev
		bl.add(key, &scratch)
		want[key] = scratch
		scratch = Record{Name: "overwritten", Challenges: []Challenge{{Value: "overwritten"}}}
	}
	b := bl.build()
	if b.Len() != n || len(b.aside) != 3+(n+63)/64 || len(b.records.chunks) < 2 {
		t.Fatalf("base of %d names holds %d, %d aside, in %d chunks", n, b.Len(), len(b.aside), len(b.records.chunks))
	}
	for key, w := range want {
		got, ok := recordOf(b, key)
		if !ok || !reflect.DeepEqual(got, w) {
			t.Errorf("record %s:\n got %+v\nwant %+v", key, got, w)
		}
		if name, ok := b.nameOfToken(w.Token); !ok || name != key {
			t.Errorf("token of %s finds %q, %v", key, name, ok)
		}
		_ = append(got.Challenges, Challenge{Value: "overflow"})
	}
	for key, w := range want {
		if got, _ := recordOf(b, key); !reflect.DeepEqual(got, w) {
			t.Errorf("record %s changed by an append to a copy's challenges: %+v", key, got)
		}
	}
	for _, missing := range []string{"gw", "gw" + fmt.Sprint(n), "not-its-key", ""} {
		if d, ok := recordOf(b, missing); ok {
			t.Errorf("lookup of %q found %+v", missing, d)
		}
	}
}

// recordOf is the record of name in b.
func recordOf(b *base, name string) (Record, bool) {
	at, ok := b.find(name)
	if !ok {
		return Record{}, false
	}
	return at.record(), true
}

// The bulk of a base (its arena's chunks and its tables) holds no pointers, so that the
// garbage collector has nothing to scan in it.
func TestBaseBulkHasNoPointers(t *testing.T) {
	b := newBuilder(0).build()
	for _, bulk := range []any{b.records.chunks[0:0:0], b.byName, b.byToken} {
		elem := reflect.TypeOf(bulk).Elem()
		if elem.Kind() == reflect.Slice {
			elem = elem.Elem() // the chunks of the arena
		}
		if hasPointers(elem) {
			t.Errorf("%T: its elements hold pointers", bulk)
		}
	}
	if hasPointers(reflect.TypeOf(recordHeader{})) {
		t.Error("recordHeader holds pointers")
	}
}

// hasPointers reports whether values of t hold pointers the collector would trace.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Array:
		return hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Pointer, reflect.String, reflect.Slice, reflect.Map, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return true
	}
	return false
}

// BenchmarkViewGC times a full garbage collection with a view of n records in the heap,
// and nothing else of size: one allocation per record and string in maps (the baseline, as
// the watch's records are) next to the view's base (an arena and tables, nothing to scan).
// It is the cost each collection cycle puts on the DNS path.
func BenchmarkViewGC(b *testing.B) {
	for _, n := range []int{200_000, 1_000_000} {
		for _, bc := range []struct {
			name string
			load func(values [][]byte) any
		}{
			{"per-record", func(values [][]byte) any {
				m := make(map[string]*Record, n)
				for i, v := range values {
					name := fmt.Sprintf("gw%d", i)
					m[name] = decode(name, &mvccpb.KeyValue{Value: v})
				}
				return m
			}},
			{"base", func(values [][]byte) any {
				return viewOfValues(n, func(i int) []byte { return values[i] })
			}},
			{"no-view", func([][]byte) any { return nil }}, // the floor: the process itself
		} {
			b.Run(fmt.Sprintf("%s/%d", bc.name, n), func(b *testing.B) {
				values := make([][]byte, n)
				for i := range values {
					values[i], _ = json.Marshal(typicalRecord(i))
				}
				// values, not used after, is not traced with the view.
				view := bc.load(values)
				runtime.GC()
				for b.Loop() {
					runtime.GC()
				}
				runtime.KeepAlive(view)
			})
		}
	}
}

// BenchmarkViewHeap reports the live heap a view of a million typical records takes once
// loaded (HeapAlloc after a full collection, before and after the load), per name.
func BenchmarkViewHeap(b *testing.B) {
	const n = 1_000_000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		v := viewOfValues(n, func(i int) []byte {
			b, _ := json.Marshal(typicalRecord(i))
			return b
		})
		runtime.GC()
		runtime.ReadMemStats(&after)
		if v.Len() != n {
			b.Fatalf("view holds %d names, want %d", v.Len(), n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/name")
		runtime.KeepAlive(v)
	}
}

// viewOfValues is a loaded view of n records named gw<i>, whose stored values value makes,
// built as View.load builds it from a scan.
func viewOfValues(n int, value func(i int) []byte) *View {
	bl := newBuilder(n)
	var d Record
	for i := range n {
		if d = (Record{}); decodeRecord(value(i), &d) != nil {
			panic(fmt.Sprintf("record %d does not decode", i))
		}
		d.rev = int64(i + 1)
		bl.add(fmt.Sprintf("gw%d", i), &d)
	}
	v := newView(&Keyspace{})
	v.base = bl.build()
	v.names = v.base.Len()
	v.loaded.Store(true)
	return v
}

// FuzzCompactRecord: whatever stored record the view decodes, its base hands it back as
// decoded, between two neighbours it leaves alone, apart from what the arena documents as
// not kept (compactSize): times' locations, and an empty challenge list's being non-nil.
func FuzzCompactRecord(f *testing.F) {
	for _, d := range []Record{typicalRecord(1), typicalRecord(2), fullRecord(3), {}} {
		b, _ := json.Marshal(d)
		f.Add("gw", b)
	}
	f.Add("gw", []byte(`{"name":"gw","token":"t","created":"2026-11-26T12:00:00.5+02:00","challenges":[],"ipv6":"fe80::1%eth0"}`))
	f.Add("gw", []byte(`{"name":"gw","ipv4":"2001:db8::1","ipv6":"192.0.2.1","challenges":[{"value":"","set":"0001-01-01T00:00:00Z"}]}`))
	f.Add("other", []byte(`{"name":"gw","description":"`+strings.Repeat("x", maxCompactBytes)+`"}`))
	f.Fuzz(func(t *testing.T, key string, stored []byte) {
		var d Record
		if key == "" || key == "gw1" || key == "gw2" || decodeRecord(stored, &d) != nil {
			return
		}
		d.rev = 7
		want := d
		if compactSize(key, &d) > 0 {
			want.Created, want.LastPing = d.Created.UTC(), d.LastPing.UTC()
			want.Challenges = nil
			for _, c := range d.Challenges {
				want.Challenges = append(want.Challenges, Challenge{c.Value, c.Set.UTC()})
			}
		}
		neighbours := []Record{typicalRecord(1), typicalRecord(2)}
		bl := newBuilder(3)
		bl.add("gw1", &neighbours[0])
		bl.add(key, &d)
		bl.add("gw2", &neighbours[1])
		d = Record{} // the base must not share the Record it was given
		b := bl.build()
		if got, ok := recordOf(b, key); !ok || !reflect.DeepEqual(got, want) {
			t.Fatalf("record %q stored as %s:\n got %+v, %v\nwant %+v", key, stored, got, ok, want)
		}
		if name, ok := b.nameOfToken(want.Token); !ok || name != key && want.Token != neighbours[0].Token && want.Token != neighbours[1].Token {
			t.Errorf("its token finds %q, %v", name, ok)
		}
		for i, n := range neighbours {
			if got, ok := recordOf(b, n.Name); n.Name != key && (!ok || !reflect.DeepEqual(got, n)) {
				t.Errorf("neighbour %d: %+v, %v", i, got, ok)
			}
		}
	})
}
