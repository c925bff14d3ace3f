package diff

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
)

// Entity events are about (profile, entity) pairs: the profile and the key
// of the entity at the activation's step, however many chains of the
// profile reach it (two wishlists holding one product are one pair). A
// pair is in a generation when at least one of its chains is; its
// _entity_context shows its first chain in key order, and its messageId
// is derived from the profile and the entity key alone.

// Reasons of Entity Removed and Audience Exited (properties.reason).
const (
	// ReasonNoLongerMatches: the profile stays in the audience, the entity
	// no longer matches (Entity Removed); the profile no longer matches
	// the audience's condition (Audience Exited).
	ReasonNoLongerMatches = "no_longer_matches"
	// ReasonProfileExited: the profile left the audience, taking its
	// entities with it (Entity Removed).
	ReasonProfileExited = "profile_exited"
	// ReasonDefinitionChanged: the profile is out of a new version of the
	// audience's definition, diffed against the previous one's (Audience
	// Exited).
	ReasonDefinitionChanged = "definition_changed"
)

// Where an Entity Removed event's values of the removed entity come from
// (properties.entity_values).
const (
	// ValuesCurrent: the entity still exists; its columns are read from
	// the warehouse by key in the cycle that removes it.
	ValuesCurrent = "current"
	// ValuesLastSeen: the entity's row is gone (or there was no lookup):
	// the values of the last generation that had the pair.
	ValuesLastSeen = "last_seen"
)

// LookupBatch is the number of keys one lookup statement reads at most.
const LookupBatch = 1000

// level tracks the pairs of one entity step that activations name while
// the merge passes over the rows in key order.
type level struct {
	k     int
	acts  []*actSpec
	oldOK bool // N-1's path to step k is the same as N's

	// Step 0: a pair's chains are one run of the key order (the chain is
	// the profile and the entity key), so one pair is gathered at a time.
	active bool
	cur    pairAgg

	// Steps below 0: chains of one pair are spread over the profile's rows
	// (profile, w1, p1 … profile, w2, p1), so a profile's pairs are
	// gathered by entity key and decided when the profile ends.
	byKey map[string]int
	aggs  []pairAgg

	// lookup is set when Entity Removed events of this step read the
	// entity's current values: N-1 and N enrich the same columns of it.
	lookup bool
	// oldStep are the positions of step k's columns among N-1's step
	// values (Layout.stepCols order).
	oldStep []int
	pending []removal
}

// pairAgg is one pair being gathered: whether N-1 and N have it, and the
// first chain (profile, key_0..key_k) and its step values on each side.
type pairAgg struct {
	ent                []byte // the entity key, encoded
	inOld, inNew       bool
	oldChain, newChain []byte
	oldVal, newVal     []byte
}

// removal is an Entity Removed event waiting for the lookup of current
// values that ends the merge.
type removal struct {
	a            *actSpec
	id, chain    []byte
	ent          []byte
	traits, vals []byte
	reason       string
}

// changeCol is a column an Entity Changed activation compares: its index
// among N's and N-1's step values.
type changeCol struct {
	name string
	newS int
	oldS int
}

// prepareLevels sets up what the levels' events need of the two layouts.
func (c *cycle) prepareLevels() {
	for _, l := range c.levels {
		if l.k > 0 {
			l.byKey = map[string]int{}
		}
		newCols, oldCols := stepColumns(c.newL, l.k), stepColumns(c.oldL, l.k)
		l.oldStep = nil
		for _, p := range oldCols {
			l.oldStep = append(l.oldStep, p.pos)
		}
		l.lookup = c.in.Lookup != nil && l.oldOK && slices.EqualFunc(newCols, oldCols, func(a, b stepColumn) bool { return a.name == b.name })
		for _, a := range l.acts {
			if a.kind != dsl.EntityChanged {
				continue
			}
			a.changes = nil
			for _, n := range newCols {
				if n.name == c.newL.Steps[l.k].Key || !a.includes(c.newL, c.newL.Enrich[n.j]) {
					continue
				}
				old := -1
				for _, o := range oldCols {
					if o.name == n.name {
						old = o.pos
					}
				}
				if old >= 0 {
					a.changes = append(a.changes, changeCol{name: n.name, newS: n.pos, oldS: old})
				}
			}
		}
	}
}

// stepColumn is an enrichment column of one step: its name, its index in
// Layout.Enrich and its position among the step values.
type stepColumn struct {
	name   string
	j, pos int
}

func stepColumns(l Layout, k int) []stepColumn {
	var out []stepColumn
	for pos, j := range l.stepCols() {
		if l.Enrich[j].Step == k {
			out = append(out, stepColumn{name: l.Enrich[j].Name, j: j, pos: pos})
		}
	}
	return out
}

// row handles an entity row key: it feeds the levels activations name.
func (c *cycle) row(key []byte, hasO bool, oVal []byte, hasN bool, nVal []byte) error {
	if len(c.levels) == 0 {
		return nil
	}
	var err error
	c.ends, c.nulls, err = elemEnds(key, c.ends[:0], c.nulls[:0])
	if err != nil {
		return err
	}
	for _, l := range c.levels {
		if len(c.ends) < l.k+2 {
			continue
		}
		chain := true
		for j := 1; j <= l.k+1; j++ {
			if c.nulls[j] {
				chain = false
				break
			}
		}
		inO, inN := hasO && l.oldOK, hasN
		if !chain || (!inO && !inN) {
			continue
		}
		p := key[:c.ends[l.k+1]]
		if l.k > 0 {
			l.gather(p, key[c.ends[l.k]:c.ends[l.k+1]], inO, oVal, inN, nVal)
			continue
		}
		if l.active && !bytes.Equal(l.cur.oldChain, p) && !bytes.Equal(l.cur.newChain, p) {
			if err := c.endLevel(l); err != nil {
				return err
			}
		}
		if len(p) == len(key) && c.sameArity {
			// The pair is the whole key, which no other item has: decide
			// now, without copying values.
			if err := c.pair(l, pairState{id: p, oldChain: p, newChain: p, inOld: inO, inNew: inN, oldVal: oVal, newVal: nVal}); err != nil {
				return err
			}
			continue
		}
		if !l.active {
			l.active = true
			l.cur.reset()
		}
		l.cur.add(p, inO, oVal, inN, nVal)
	}
	return nil
}

func (g *pairAgg) reset() {
	g.inOld, g.inNew = false, false
	g.oldChain, g.newChain = g.oldChain[:0], g.newChain[:0]
}

// add records a chain of the pair; the first chain of each side stays.
func (g *pairAgg) add(chain []byte, inO bool, oVal []byte, inN bool, nVal []byte) {
	if inO && !g.inOld {
		g.inOld = true
		g.oldChain = append(g.oldChain[:0], chain...)
		g.oldVal = append(g.oldVal[:0], oVal...)
	}
	if inN && !g.inNew {
		g.inNew = true
		g.newChain = append(g.newChain[:0], chain...)
		g.newVal = append(g.newVal[:0], nVal...)
	}
}

// gather adds a chain to the profile's pair of entity key ent.
func (l *level) gather(chain, ent []byte, inO bool, oVal []byte, inN bool, nVal []byte) {
	i, ok := l.byKey[string(ent)]
	if !ok {
		i = len(l.aggs)
		if i < cap(l.aggs) {
			l.aggs = l.aggs[:i+1]
		} else {
			l.aggs = append(l.aggs, pairAgg{})
		}
		g := &l.aggs[i]
		g.reset()
		g.ent = append(g.ent[:0], ent...)
		l.byKey[string(g.ent)] = i
	}
	l.aggs[i].add(chain, inO, oVal, inN, nVal)
}

// endProfile closes the pairs of the current profile.
func (c *cycle) endProfile() error {
	for _, l := range c.levels {
		if l.k == 0 {
			if l.active {
				if err := c.endLevel(l); err != nil {
					return err
				}
			}
			continue
		}
		if len(l.aggs) == 0 {
			continue
		}
		slices.SortFunc(l.aggs, func(a, b pairAgg) int { return bytes.Compare(a.ent, b.ent) })
		for i := range l.aggs {
			g := &l.aggs[i]
			chain := g.newChain
			if !g.inNew {
				chain = g.oldChain
			}
			prof, err := elemEnd(chain)
			if err != nil {
				return err
			}
			c.idBuf = append(append(c.idBuf[:0], chain[:prof]...), g.ent...)
			if err := c.pair(l, pairState{id: c.idBuf, ent: g.ent, oldChain: g.oldChain, newChain: g.newChain,
				inOld: g.inOld, inNew: g.inNew, oldVal: g.oldVal, newVal: g.newVal}); err != nil {
				return err
			}
		}
		l.aggs = l.aggs[:0]
		clear(l.byKey)
	}
	return nil
}

// endLevel emits the entity events of the step-0 pair l has gathered.
func (c *cycle) endLevel(l *level) error {
	l.active = false
	g := &l.cur
	chain := g.newChain
	if !g.inNew {
		chain = g.oldChain
	}
	return c.pair(l, pairState{id: chain, oldChain: g.oldChain, newChain: g.newChain,
		inOld: g.inOld, inNew: g.inNew, oldVal: g.oldVal, newVal: g.newVal})
}

// pairState is one (profile, entity) pair: whether N-1 and N have it, and
// the first chain and its step values on each side.
type pairState struct {
	id                 []byte // profile and entity key, encoded: the messageId's
	ent                []byte // the entity key, encoded (nil: the end of id)
	oldChain, newChain []byte
	inOld, inNew       bool
	oldVal, newVal     []byte
}

func (p *pairState) entity() ([]byte, error) {
	if p.ent != nil {
		return p.ent, nil
	}
	n, err := elemEnd(p.id)
	if err != nil {
		return nil, err
	}
	return p.id[n:], nil
}

// pair emits the entity events of one pair.
func (c *cycle) pair(l *level, p pairState) error {
	for _, a := range l.acts {
		var err error
		switch a.kind {
		case dsl.EntityAdded:
			if (a.first && a.sendCurrent && p.inNew) || (!a.first && p.inNew && !p.inOld) {
				err = c.entityEvent(a, EventEntityAdded, p.id, p.newChain, true, c.prof.newTraits, p.newVal, entityExtra{})
			}
		case dsl.EntityRemoved:
			if !a.first && p.inOld && !p.inNew {
				err = c.removed(l, a, &p)
			}
		case dsl.EntityChanged:
			if !a.first && p.inOld && p.inNew {
				err = c.changed(a, &p)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *cycle) removeReason() string {
	if c.prof.inNew {
		return ReasonNoLongerMatches
	}
	return ReasonProfileExited
}

// removed emits an Entity Removed event, or holds it for the lookup of
// the entity's current values.
func (c *cycle) removed(l *level, a *actSpec, p *pairState) error {
	if !l.lookup {
		return c.entityEvent(a, EventEntityRemoved, p.id, p.oldChain, false, c.prof.oldTraits, p.oldVal,
			entityExtra{reason: c.removeReason(), values: ValuesLastSeen})
	}
	ent, err := p.entity()
	if err != nil {
		return err
	}
	l.pending = append(l.pending, removal{
		a: a, id: bytes.Clone(p.id), chain: bytes.Clone(p.oldChain), ent: bytes.Clone(ent),
		traits: bytes.Clone(c.prof.oldTraits), vals: bytes.Clone(p.oldVal), reason: c.removeReason(),
	})
	return nil
}

// changed emits an Entity Changed event if a compared column changed.
func (c *cycle) changed(a *actSpec, p *pairState) error {
	if len(a.changes) == 0 {
		return nil
	}
	of, err := splitFragments(p.oldVal, len(c.oldL.stepCols()), c.frags[1])
	if err != nil {
		return err
	}
	c.frags[1] = of
	nf, err := splitFragments(p.newVal, len(c.newL.stepCols()), c.frags[2])
	if err != nil {
		return err
	}
	c.frags[2] = nf
	var ch []change
	for _, col := range a.changes {
		if !bytes.Equal(of[col.oldS], nf[col.newS]) {
			ch = append(ch, change{name: col.name, from: of[col.oldS], to: nf[col.newS]})
		}
	}
	if len(ch) == 0 {
		return nil
	}
	return c.entityEvent(a, EventEntityChanged, p.id, p.newChain, true, c.prof.newTraits, p.newVal, entityExtra{changes: ch})
}

// entityEvent emits an entity event of the pair id, showing chain with
// the step values vals and the profile's traits of the side it is on.
func (c *cycle) entityEvent(a *actSpec, event string, id, chain []byte, in bool, traits, vals []byte, x entityExtra) error {
	lay := c.newL
	if !in {
		lay = c.oldL
	}
	var err error
	if c.frags[0], err = splitFragments(traits, len(lay.traitCols()), c.frags[0]); err != nil {
		return err
	}
	if c.frags[3], err = splitFragments(vals, len(lay.stepCols()), c.frags[3]); err != nil {
		return err
	}
	b := &c.body
	*b = eventBody{form: formEntity, in: in, traits: traits, reason: x.reason, chain: chain, vals: vals,
		values: x.values, changes: x.changes, overrides: b.overrides[:0]}
	if x.current != nil {
		for i, pos := range x.oldStep {
			if pos >= len(c.frags[3]) {
				return errBadValue
			}
			b.overrides = append(b.overrides, override{pos: pos, frag: x.current[i]})
		}
	}
	return c.em.emit(a, event, TypeTrack, id, b)
}

// flushRemovals looks up the current values of the removed entities, in
// statements of at most LookupBatch keys, and emits the Entity Removed
// events held for them.
func (c *cycle) flushRemovals(ctx context.Context) error {
	for _, l := range c.levels {
		if len(l.pending) == 0 {
			continue
		}
		current, err := c.lookup(ctx, l)
		if err != nil {
			return err
		}
		for i := range l.pending {
			r := &l.pending[i]
			x := entityExtra{reason: r.reason, values: ValuesLastSeen}
			if v, ok := current[string(r.ent)]; ok {
				x.values = ValuesCurrent
				if x.current, err = splitFragments(v, len(l.oldStep), nil); err != nil {
					return err
				}
				x.oldStep = l.oldStep
			}
			if err := c.entityEvent(r.a, EventEntityRemoved, r.id, r.chain, false, r.traits, r.vals, x); err != nil {
				return err
			}
		}
		l.pending = nil
	}
	return nil
}

// lookup reads the current values of the level's removed entities: by
// encoded key, the step's values in the stored form.
func (c *cycle) lookup(ctx context.Context, l *level) (map[string][]byte, error) {
	var keys [][]byte
	for _, r := range l.pending {
		keys = append(keys, r.ent)
	}
	slices.SortFunc(keys, bytes.Compare)
	keys = slices.CompactFunc(keys, bytes.Equal)
	out := map[string][]byte{}
	ncols := len(l.oldStep)
	var text, scratch, frag, enc, val []byte
	for len(keys) > 0 {
		n := min(len(keys), LookupBatch)
		batch := make([]string, 0, n)
		for _, k := range keys[:n] {
			t, ok, _, err := decodeElem(k)
			if err != nil {
				return nil, err
			}
			if ok {
				batch = append(batch, string(t))
			}
		}
		keys = keys[n:]
		rr, err := c.in.Lookup(ctx, l.k, batch)
		if err != nil {
			return nil, fmt.Errorf("diff: looking up the current values of removed %s rows: %w", c.newL.Steps[l.k].Entity, err)
		}
		err = func() error {
			defer rr.Release()
			if rr.Schema().NumFields() != 1+ncols {
				return fmt.Errorf("%w: the lookup of %s returned %d columns, want %d", ErrLayout, c.newL.Steps[l.k].Entity, rr.Schema().NumFields(), 1+ncols)
			}
			for rr.Next() {
				rec := rr.RecordBatch()
				kc, err := executor.NewCells(rec.Column(0))
				if err != nil {
					return err
				}
				cols := make([]jsonCol, ncols)
				for i := range cols {
					if cols[i], err = newJSONCol(rec.Column(i + 1)); err != nil {
						return err
					}
				}
				for i := range int(rec.NumRows()) {
					var ok bool
					if text, ok = kc.AppendText(text[:0], i); !ok {
						continue
					}
					enc = appendText(enc[:0], text)
					val = val[:0]
					for j := range cols {
						if frag, scratch, err = cols[j].appendJSON(frag[:0], scratch, i); err != nil {
							return err
						}
						val = appendFragment(val, frag)
					}
					// A key the table holds twice: the smallest values, as
					// for duplicate result rows.
					if prev, ok := out[string(enc)]; !ok || bytes.Compare(val, prev) < 0 {
						out[string(enc)] = bytes.Clone(val)
					}
				}
			}
			return rr.Err()
		}()
		if err != nil {
			return nil, fmt.Errorf("diff: looking up the current values of removed %s rows: %w", c.newL.Steps[l.k].Entity, err)
		}
	}
	return out, nil
}
