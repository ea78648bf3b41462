package etcdstore

import (
	"unsafe"

	fastjson "github.com/segmentio/encoding/json"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// unmarshalRecord decodes a stored record into d. Records are written with encoding/json and
// read with segmentio/encoding/json, a drop-in decoder about four times faster on them
// (BenchmarkDecodeRecord): at a full load of a million records, decoding is most of the
// time. FuzzDecodeRecord checks that it reads what encoding/json writes as encoding/json does.
func unmarshalRecord(b []byte, d *Record) error { return fastjson.Unmarshal(b, d) }

// decodeRecord reads a stored record for the view as this version keeps it, whichever
// version wrote it.
func decodeRecord(b []byte, d *Record) error {
	if err := unmarshalRecord(b, d); err != nil {
		return err
	}
	d.upgrade()
	return nil
}

// loader builds the records of a full load of the view in few, large allocations: records in
// slabs, their strings and challenge lists packed into shared chunks. The garbage collector
// traces the view on every cycle, and what it pays is mostly one cache miss per distinct
// object a pointer leads to; a million records as a million small objects each (and as many
// strings) cost it seconds per cycle, the same records in a few hundred large objects a small
// part of that. The queries pay for every such cycle, since they are what allocates.
//
// A chunk stays in memory while any record of it is in the view, so records replaced later
// (by the watch, which allocates as usual) can keep a chunk alive: at most what the load
// itself took, until the next full load builds new chunks.
type loader struct {
	records    []Record
	challenges []Challenge
	bytes      []byte
}

const (
	slabRecords    = 1024
	slabChallenges = 1024
	chunkBytes     = 64 << 10
)

// decode parses the record stored at kv, named name (the key's last part), into the slab, or
// returns nil for a record that does not parse (it shows up in the consistency check).
func (l *loader) decode(kv *mvccpb.KeyValue, name []byte) (string, *Record) {
	if len(l.records) == cap(l.records) {
		l.records = make([]Record, 0, slabRecords)
	}
	l.records = l.records[:len(l.records)+1]
	d := &l.records[len(l.records)-1]
	if err := decodeRecord(kv.Value, d); err != nil {
		*d = Record{}
		l.records = l.records[:len(l.records)-1]
		return "", nil
	}
	d.rev = kv.ModRevision
	key := l.str(unsafe.String(unsafe.SliceData(name), len(name)))
	if d.Name == key {
		d.Name = key
	} else {
		d.Name = l.str(d.Name)
	}
	for _, s := range []*string{&d.Token, &d.Description, &d.Continent, &d.Email} {
		*s = l.str(*s)
	}
	if n := len(d.Challenges); n > 0 {
		if len(l.challenges)+n > cap(l.challenges) {
			l.challenges = make([]Challenge, 0, max(slabChallenges, n))
		}
		at := len(l.challenges)
		l.challenges = append(l.challenges, d.Challenges...)
		d.Challenges = l.challenges[at : at+n : at+n]
		for i := range d.Challenges {
			d.Challenges[i].Value = l.str(d.Challenges[i].Value)
		}
	}
	return key, d
}

// str returns a copy of s in the current chunk.
func (l *loader) str(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > chunkBytes/8 {
		return string([]byte(s))
	}
	if len(l.bytes)+len(s) > cap(l.bytes) {
		l.bytes = make([]byte, 0, chunkBytes)
	}
	at := len(l.bytes)
	l.bytes = append(l.bytes, s...)
	// The chunk's bytes up to len are never written again, so the string stays immutable.
	return unsafe.String(&l.bytes[at], len(s))
}
