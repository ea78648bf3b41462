package etcdstore

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

// fold returns a new base of the records of b as changed by o.
func fold(b *base, o *overlay) *base {
	bl := newBuilder(b.Len() + len(o.byName))
	b.each(func(name string, d Record) bool {
		if _, changed := o.byName[name]; !changed {
			bl.add(name, &d)
		}
		return true
	})
	for name, d := range o.byName {
		if d != nil {
			bl.add(name, d)
		}
	}
	return bl.build()
}
