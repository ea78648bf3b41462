package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Check reads every key under the store's prefix at one revision and returns one line per
// inconsistency between the records and their indexes, sorted; none means the data is consistent.
// Lines name keys, names and SHA-256 hashes, never a secret.
func (ks *Keyspace) Check(ctx context.Context) ([]string, error) {
	st, err := ks.readState(ctx)
	if err != nil {
		return nil, err
	}
	problems := st.problems
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	for _, name := range st.names {
		r := st.records[name]
		if r.d == nil {
			continue
		}
		if r.d.Token == "" {
			report("%s: record has no API token", ks.keys.name(name))
		}
		for _, ix := range indexesOf(r.d) {
			k := ks.keys.hashedKey(ix.dir, ix.hash)
			owner, ok := st.owners[k]
			switch {
			case !ok:
				report("%s: no index %s for its %s", ks.keys.name(name), k, secretOf(ix.dir))
			case owner.name != name:
				report("%s: index %s for its %s points at %q", ks.keys.name(name), k, secretOf(ix.dir), owner.name)
			}
		}
	}
	for _, e := range st.entries {
		k := ks.keys.hashedKey(e.dir, e.hash)
		if st.dangling(e) {
			if _, ok := st.records[e.name]; !ok {
				report("%s: points at %q, which has no record", k, e.name)
			} else {
				report("%s: points at %q, whose record has no %s with this hash", k, e.name, secretOf(e.dir))
			}
		}
	}
	slices.Sort(problems)
	return problems, nil
}

// keyState is every key under the prefix at one revision, sorted out for the checker.
type keyState struct {
	// records maps a name (from its key) to its record; a nil d marks one that does not parse.
	records map[string]keyRecord
	names   []string
	entries []indexEntry
	owners  map[string]indexEntry // index key -> its entry
	// problems are those found reading the keys: unparsable records and keys out of layout.
	problems []string
}

type keyRecord struct {
	d   *Record
	rev int64 // the key's mod revision
}

// indexEntry is one index key: the hash under dir, the name it points at, its mod revision.
type indexEntry struct {
	dir, hash, name string
	rev             int64
}

// dangling reports whether e points at no record, or at a record that parses and has no
// secret with e's hash: either way nothing can reach a record through it.
func (st *keyState) dangling(e indexEntry) bool {
	r, ok := st.records[e.name]
	return !ok || r.d != nil && !slices.Contains(indexesOf(r.d), index{e.dir, e.hash})
}

// readState scans every key under the prefix at one revision.
func (ks *Keyspace) readState(ctx context.Context) (*keyState, error) {
	st := &keyState{records: map[string]keyRecord{}, owners: map[string]indexEntry{}}
	report := func(format string, args ...any) { st.problems = append(st.problems, fmt.Sprintf(format, args...)) }
	_, err := ks.scan(ctx, ks.keys.prefix, func(kv *mvccpb.KeyValue) {
		key, value := string(kv.Key), kv.Value
		rel := strings.TrimPrefix(key, ks.keys.prefix)
		dir := ""
		for _, d := range ks.keys.dirs() {
			if strings.HasPrefix(rel, d) {
				dir = d
				break
			}
		}
		rest := strings.TrimPrefix(rel, dir)
		switch {
		case rel == serialKey:
			if _, err := parseOffset(value); err != nil {
				report("%s: %v", key, err)
			}
		case dir == "":
			report("%s: key outside %s", redact(key), strings.Join(ks.keys.dirs(), ", "))
		case dir == namesDir:
			st.names = append(st.names, rest)
			d, err := parseRecord(value)
			if err != nil {
				// Decoding errors quote one character, or an address or time: never a secret.
				report("%s: record is not valid JSON: %v", key, err)
				st.records[rest] = keyRecord{rev: kv.ModRevision}
				return
			}
			st.records[rest] = keyRecord{d, kv.ModRevision}
			if d.Name != rest {
				report("%s: record is named %q", key, d.Name)
			}
		case !isHash(rest):
			// The part after the directory may be a raw secret written by some other tool.
			report("%s<%d bytes>: index key is not a SHA-256 hash", ks.keys.dir(dir), len(rest))
		default:
			e := indexEntry{dir, rest, string(value), kv.ModRevision}
			st.entries = append(st.entries, e)
			st.owners[key] = e
		}
	})
	if err != nil {
		return nil, fmt.Errorf("consistency check: %w", err)
	}
	return st, nil
}

// parseRecord reads a stored record with encoding/json, whose errors (reported) quote no
// more than a character of the record, upgraded to this version's fields.
func parseRecord(value []byte) (*Record, error) {
	var d Record
	if err := json.Unmarshal(value, &d); err != nil {
		return nil, err
	}
	d.upgrade()
	return &d, nil
}

// scan hands fn every key under prefix as of one revision: read from the member's own store
// when it runs in this process, through the client otherwise.
func (ks *Keyspace) scan(ctx context.Context, prefix string, fn func(*mvccpb.KeyValue)) (int64, error) {
	if ks.local != nil {
		return ks.local.scan(ctx, prefix, fn)
	}
	return scan(ctx, ks.cli, ks.timeout, prefix, fn)
}

// uuidLike matches the shape of this registry's tokens and verification ids.
var uuidLike = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// redact hides anything shaped like a secret in a key of unknown layout.
func redact(key string) string { return uuidLike.ReplaceAllString(key, "<redacted>") }
