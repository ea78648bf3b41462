package etcdstore

import (
	"net/netip"
	"time"
	"unsafe"

	fastjson "github.com/segmentio/encoding/json"
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

// arena holds the records of a view's base in their compact form, in chunks of bytes that
// hold no pointer the garbage collector knows of: a collection does not look into them, and
// the view's bulk costs it nothing however many names it holds (BenchmarkViewGC). Records
// are read out by value (record), their strings made over the chunk's bytes, which keeps the
// chunk alive as long as any of them is.
//
// A record's challenges are the one exception to "no pointers": they are kept as real
// Challenge values inside the chunk, so that reading a record allocates nothing, and their
// Value strings point into that same chunk. The collector does not see those pointers, and
// needs not: they lead only into the chunk that holds them, which whoever holds the record's
// Challenges slice keeps alive, and Go's collector never moves a heap object. For that, a
// chunk is allocated once at its full size and never grows, a record and its strings never
// straddle two chunks, nothing in a chunk is written after the arena is published, and the
// challenges' times hold no *time.Location (they are kept in UTC).
type arena struct {
	chunks [][]byte
}

const (
	// chunkBytes is the size of a chunk: large enough that the arena is a few hundred
	// objects at a million names, small enough that the last one wastes little.
	chunkBytes = 1 << 20
	// refShift turns a record's offset in its chunk (a multiple of 8) into the low bits of
	// its ref, the chunk's index being the high ones: 2^15 chunks, 32 GiB.
	refShift = 3
	refChunk = 20 - refShift
	// maxCompactBytes is the largest record kept in the arena; a larger one (a description
	// out of the ordinary) is kept as a Record aside.
	maxCompactBytes = 64 << 10
)

// ref is where a record is in its arena: chunk index << refChunk | offset >> refShift.
type ref uint32

// recordHeader is the fixed part of a record in the arena, followed by its challenges (as
// Challenge values), then the bytes of its strings in the order of the lengths here.
type recordHeader struct {
	rev                   int64
	createdSec, pingSec   int64
	createdNsec, pingNsec int32
	ipv6                  [16]byte
	ipv4                  [4]byte
	nameLen, tokenLen     uint16
	descLen, emailLen     uint16
	continentLen          uint16
	challenges            uint8
	mode                  Mode
	flags                 uint8
}

// Flags of recordHeader.
const (
	flagOptOut = 1 << iota
	flagEmailUnverified
	flagIPv4
	flagIPv6
)

const (
	headerBytes    = int(unsafe.Sizeof(recordHeader{}))
	challengeBytes = int(unsafe.Sizeof(Challenge{}))
)

// compactSize is how many bytes d takes in the arena (a multiple of 8), or 0 when it is not
// kept there: something pending (rare, and pointers of its own), an address the header has no
// place for (a zone, or a family other than the field's), a name other than its key's (a
// damaged record), or a size beyond the header's lengths. What the arena does not keep of a
// record it keeps: times' locations (they come back in UTC, the same instants) and an empty
// challenge list's being empty rather than nil.
func compactSize(name string, d *Record) int {
	if d.Pending != nil || d.Name != name || len(d.Challenges) > 255 ||
		d.IPv4.IsValid() && !d.IPv4.Is4() || d.IPv6.IsValid() && (!d.IPv6.Is6() || d.IPv6.Zone() != "") {
		return 0
	}
	size := headerBytes + len(d.Challenges)*challengeBytes
	for _, s := range [...]string{d.Name, d.Token, d.Description, d.Email, d.Continent} {
		if len(s) > 0xffff {
			return 0
		}
		size += len(s)
	}
	for _, c := range d.Challenges {
		size += len(c.Value)
	}
	if size > maxCompactBytes {
		return 0
	}
	return (size + 7) &^ 7
}

// put appends d, of compactSize size, to the arena and returns where it is.
func (a *arena) put(d *Record, size int) ref {
	last := len(a.chunks) - 1
	if last < 0 || len(a.chunks[last])+size > chunkBytes {
		a.chunks = append(a.chunks, make([]byte, 0, chunkBytes))
		last++
	}
	chunk := a.chunks[last]
	at := len(chunk)
	a.chunks[last] = chunk[:at+size]
	buf := chunk[at : at+size : at+size]
	h := (*recordHeader)(unsafe.Pointer(&buf[0]))
	*h = recordHeader{
		rev: d.rev, createdSec: d.Created.Unix(), createdNsec: int32(d.Created.Nanosecond()),
		pingSec: d.LastPing.Unix(), pingNsec: int32(d.LastPing.Nanosecond()),
		nameLen: uint16(len(d.Name)), tokenLen: uint16(len(d.Token)),
		descLen: uint16(len(d.Description)), emailLen: uint16(len(d.Email)), continentLen: uint16(len(d.Continent)),
		challenges: uint8(len(d.Challenges)), mode: d.Mode, flags: recordFlags(d),
	}
	if d.IPv4.IsValid() {
		h.ipv4 = d.IPv4.As4()
	}
	if d.IPv6.IsValid() {
		h.ipv6 = d.IPv6.As16()
	}
	p := headerBytes + len(d.Challenges)*challengeBytes
	for _, s := range [...]string{d.Name, d.Token, d.Description, d.Email, d.Continent} {
		p += copy(buf[p:], s)
	}
	cs := challengesAt(buf, len(d.Challenges))
	for i, c := range d.Challenges {
		n := copy(buf[p:], c.Value)
		cs[i] = Challenge{Value: stringAt(buf, p, n), Set: c.Set.UTC()}
		p += n
	}
	return ref(last<<refChunk | at>>refShift)
}

// recordFlags packs d's booleans, and which addresses it has, for its header.
func recordFlags(d *Record) uint8 {
	var f uint8
	for _, b := range [...]struct {
		set  bool
		flag uint8
	}{{d.OptOut, flagOptOut}, {d.EmailUnverified, flagEmailUnverified}, {d.IPv4.IsValid(), flagIPv4}, {d.IPv6.IsValid(), flagIPv6}} {
		if b.set {
			f |= b.flag
		}
	}
	return f
}

// at returns the bytes of the record at r, from its header on.
func (a *arena) at(r ref) []byte {
	return a.chunks[r>>refChunk][int(r&(1<<refChunk-1))<<refShift:]
}

// record returns the record at r. It allocates nothing: its strings and challenges are the
// arena's.
func (a *arena) record(r ref) Record {
	buf := a.at(r)
	h := (*recordHeader)(unsafe.Pointer(&buf[0]))
	d := Record{
		Mode: h.mode, OptOut: h.flags&flagOptOut != 0, EmailUnverified: h.flags&flagEmailUnverified != 0,
		Created: time.Unix(h.createdSec, int64(h.createdNsec)).UTC(), LastPing: time.Unix(h.pingSec, int64(h.pingNsec)).UTC(),
		rev: h.rev,
	}
	if h.flags&flagIPv4 != 0 {
		d.IPv4 = netip.AddrFrom4(h.ipv4)
	}
	if h.flags&flagIPv6 != 0 {
		d.IPv6 = netip.AddrFrom16(h.ipv6)
	}
	p := headerBytes + int(h.challenges)*challengeBytes
	for _, f := range [...]struct {
		s *string
		n uint16
	}{{&d.Name, h.nameLen}, {&d.Token, h.tokenLen}, {&d.Description, h.descLen}, {&d.Email, h.emailLen}, {&d.Continent, h.continentLen}} {
		*f.s = stringAt(buf, p, int(f.n))
		p += int(f.n)
	}
	if h.challenges > 0 {
		d.Challenges = challengesAt(buf, int(h.challenges))
	}
	return d
}

// each calls fn with every record of the arena, in the order they were put, until fn
// returns false: in memory order, which a pass over a large arena needs to be fast.
func (a *arena) each(fn func(ref) bool) bool {
	for i, chunk := range a.chunks {
		for at := 0; at < len(chunk); at += recordSize(chunk[at:]) {
			if !fn(ref(i<<refChunk | at>>refShift)) {
				return false
			}
		}
	}
	return true
}

// recordSize is how many bytes the record at the start of buf takes, as compactSize counted.
func recordSize(buf []byte) int {
	h := (*recordHeader)(unsafe.Pointer(&buf[0]))
	size := headerBytes + int(h.challenges)*challengeBytes +
		int(h.nameLen) + int(h.tokenLen) + int(h.descLen) + int(h.emailLen) + int(h.continentLen)
	for _, c := range challengesAt(buf, int(h.challenges)) {
		size += len(c.Value)
	}
	return (size + 7) &^ 7
}

// name returns the name of the record at r, and its token.
func (a *arena) name(r ref) (name, token string) {
	buf := a.at(r)
	h := (*recordHeader)(unsafe.Pointer(&buf[0]))
	p := headerBytes + int(h.challenges)*challengeBytes
	return stringAt(buf, p, int(h.nameLen)), stringAt(buf, p+int(h.nameLen), int(h.tokenLen))
}

// stringAt is the string of the n bytes of buf at p, sharing them.
func stringAt(buf []byte, p, n int) string {
	if n == 0 {
		return ""
	}
	return unsafe.String(&buf[p], n)
}

// challengesAt is the n challenges that follow the header in buf, sharing them; its capacity
// is n, so that appending to it copies.
func challengesAt(buf []byte, n int) []Challenge {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*Challenge)(unsafe.Pointer(&buf[headerBytes])), n)
}
