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
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// records maps a name (from its key) to its record; nil marks a record that does not parse.
	records := map[string]*Record{}
	var names []string
	type entry struct{ dir, hash, name string }
	var entries []entry
	_, err := ks.scan(ctx, ks.keys.prefix, func(kv *mvccpb.KeyValue) {
		k, value := kv.Key, kv.Value
		key := string(k)
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
			names = append(names, rest)
			var d Record
			if err := json.Unmarshal(value, &d); err != nil {
				// Decoding errors quote one character, or an address or time: never a secret.
				report("%s: record is not valid JSON: %v", key, err)
				records[rest] = nil
				return
			}
			d.upgrade()
			records[rest] = &d
			if d.Name != rest {
				report("%s: record is named %q", key, d.Name)
			}
		case !isHash(rest):
			// The part after the directory may be a raw secret written by some other tool.
			report("%s<%d bytes>: index key is not a SHA-256 hash", ks.keys.dir(dir), len(rest))
		default:
			entries = append(entries, entry{dir, rest, string(value)})
		}
	})
	if err != nil {
		return nil, fmt.Errorf("consistency check: %w", err)
	}

	owners := map[string]string{} // index key -> the name it points at
	for _, e := range entries {
		owners[ks.keys.hashedKey(e.dir, e.hash)] = e.name
	}
	for _, name := range names {
		d := records[name]
		if d == nil {
			continue
		}
		if d.Token == "" {
			report("%s: record has no API token", ks.keys.name(name))
		}
		for _, ix := range indexesOf(d) {
			k := ks.keys.hashedKey(ix.dir, ix.hash)
			owner, ok := owners[k]
			switch {
			case !ok:
				report("%s: no index %s for its %s", ks.keys.name(name), k, secretOf(ix.dir))
			case owner != name:
				report("%s: index %s for its %s points at %q", ks.keys.name(name), k, secretOf(ix.dir), owner)
			}
		}
	}
	for _, e := range entries {
		k := ks.keys.hashedKey(e.dir, e.hash)
		d, ok := records[e.name]
		switch {
		case !ok:
			report("%s: points at %q, which has no record", k, e.name)
		case d == nil:
			// Already reported as a record that does not parse.
		case !slices.Contains(indexesOf(d), index{e.dir, e.hash}):
			report("%s: points at %q, whose record has no %s with this hash", k, e.name, secretOf(e.dir))
		}
	}
	slices.Sort(problems)
	return problems, nil
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
