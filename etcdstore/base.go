package etcdstore

import (
	"hash/maphash"
	"math/bits"
	"strings"
)

// base is the bulk of a View, built by a full load or a fold and never changed after: the
// records in an arena, and two open-addressing hash tables of them, by name and by API token.
// Neither the arena nor the tables hold pointers, so the garbage collector does not scan the
// base, and at a million names it takes a fraction of the heap a map of *Record did
// (BenchmarkViewHeap). The few records the arena does not keep (compactSize) are kept aside
// as ordinary records.
type base struct {
	seed    maphash.Seed
	records arena
	// byName and byToken are tables of slots, each 0 (empty) or the upper 32 bits of the
	// key's hash (to pass over most other keys without reading the arena) above ref+1.
	// Probing is linear; a table is at most 2/3 full.
	byName, byToken []uint64
	compact         int // records in the arena

	aside        map[string]*Record // by name (the key's, which a damaged record may not hold)
	asideByToken map[string]string  // their names by token
}

// emptyBase is the base of a view before its first load.
func emptyBase() *base { return newBuilder(0).build() }

// Len is the number of names in the base.
func (b *base) Len() int { return b.compact + len(b.aside) }

// find returns where the record of name is.
func (b *base) find(name string) (place, bool) {
	if len(b.aside) > 0 {
		if d, ok := b.aside[name]; ok {
			return place{d: d}, true
		}
	}
	r, ok := b.lookup(b.byName, name, false)
	return place{base: b, ref: r}, ok
}

// nameOfToken returns the name of the record whose API token is token.
func (b *base) nameOfToken(token string) (string, bool) {
	if name, ok := b.asideByToken[token]; ok {
		return name, true
	}
	r, ok := b.lookup(b.byToken, token, true)
	if !ok {
		return "", false
	}
	name, _ := b.records.name(r)
	return name, true
}

// lookup looks key up in table, a table of names or (token true) of tokens.
func (b *base) lookup(table []uint64, key string, token bool) (ref, bool) {
	if b.compact == 0 {
		return 0, false // a view before its first load, or of recent names only: no hashing
	}
	h := maphash.String(b.seed, key)
	tag, mask := h>>32, uint64(len(table)-1)
	for i := h & mask; table[i] != 0; i = (i + 1) & mask {
		if table[i]>>32 != tag {
			continue
		}
		r := ref(uint32(table[i]) - 1)
		name, tok := b.records.name(r)
		if !token && name == key || token && tok == key {
			return r, true
		}
	}
	return 0, false
}

// each calls fn with every record of the base, by name, until fn returns false.
func (b *base) each(fn func(name string, d Record) bool) bool {
	for name, d := range b.aside {
		if !fn(name, *d) {
			return false
		}
	}
	return b.records.each(func(r ref) bool {
		d := b.records.record(r)
		return fn(d.Name, d)
	})
}

// builder builds a base, record after record; build ends it.
type builder struct {
	b    *base
	refs []ref
}

// newBuilder starts a base of about size records.
func newBuilder(size int) *builder {
	return &builder{
		b:    &base{seed: maphash.MakeSeed(), aside: map[string]*Record{}, asideByToken: map[string]string{}},
		refs: make([]ref, 0, size),
	}
}

// add adds d as the record of name. d itself may be reused after: the builder copies it (into
// the arena, or aside, sharing then its strings and slices, which nothing changes).
func (bl *builder) add(name string, d *Record) {
	if size := compactSize(name, d); size > 0 {
		bl.refs = append(bl.refs, bl.b.records.put(d, size))
		return
	}
	kept, key := *d, strings.Clone(name)
	if kept.Name == key {
		kept.Name = key // one string for both
	}
	bl.b.aside[key] = &kept
	bl.b.asideByToken[kept.Token] = key
}

// build indexes the records added and returns the base.
func (bl *builder) build() *base {
	b := bl.b
	b.compact = len(bl.refs)
	size := 1 << bits.Len(uint(len(bl.refs)*3/2))
	b.byName, b.byToken = make([]uint64, size), make([]uint64, size)
	for _, r := range bl.refs {
		name, token := b.records.name(r)
		insert(b.byName, maphash.String(b.seed, name), r)
		insert(b.byToken, maphash.String(b.seed, token), r)
	}
	return b
}

// insert puts r, whose key hashes to h, in the first free slot of table from h on.
func insert(table []uint64, h uint64, r ref) {
	mask := uint64(len(table) - 1)
	i := h & mask
	for table[i] != 0 {
		i = (i + 1) & mask
	}
	table[i] = h>>32<<32 | uint64(r) + 1
}
