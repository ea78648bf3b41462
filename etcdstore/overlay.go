package etcdstore

import "slices"

// overlay holds the changes the watch applied to a view since its base was built: the
// records put, and the names deleted (a nil record), which hide the base's.
type overlay struct {
	byName  map[string]*Record
	byToken map[string]string // the names of byName's records by API token
}

func newOverlay() *overlay {
	return &overlay{byName: map[string]*Record{}, byToken: map[string]string{}}
}

// set makes d the record of name; nil deletes the name.
func (o *overlay) set(name string, d *Record) {
	if old := o.byName[name]; old != nil && o.byToken[old.Token] == name {
		delete(o.byToken, old.Token)
	}
	o.byName[name] = d
	if d != nil {
		o.byToken[d.Token] = name
	}
}

// foldSize is how many names the overlay of a view whose base holds size names may hold
// before it is folded into a new base: lookups stay fast, and a fold (a pass over every
// name) comes once per size/8 changes at most.
func foldSize(size int) int { return max(4096, size/8) }

// fold returns a new base of the records of b as changed by o. It walks b's arena in memory
// order, passing over the records o replaces, found beforehand in b's table: asking o of
// each of a million names would take a third of the fold.
func fold(b *base, o *overlay) *base {
	var replaced []ref
	for name := range o.byName {
		if r, ok := b.lookup(b.byName, name, false); ok {
			replaced = append(replaced, r)
		}
	}
	slices.Sort(replaced) // the order each walks the arena in
	bl := newBuilder(b.Len() + len(o.byName))
	for name, d := range b.aside {
		if _, changed := o.byName[name]; !changed {
			bl.add(name, d)
		}
	}
	b.records.each(func(r ref) bool {
		if len(replaced) > 0 && replaced[0] == r {
			replaced = replaced[1:]
			return true
		}
		d := b.records.record(r)
		bl.add(d.Name, &d)
		return true
	})
	for name, d := range o.byName {
		if d != nil {
			bl.add(name, d)
		}
	}
	return bl.build()
}
