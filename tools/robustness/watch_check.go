package main

// The watch guarantees etcd documents (and its robustness tests check): ordered (revisions never go back),
// unique (an event once), atomic (a revision's events in one response), bookmarkable (a progress
// notification at P means no later event at or below P), reliable (every write that took effect, and
// nothing else, with the right prev_kv, version and create revision) and resumable (a watch opened later
// from revision R sees exactly the events at and after R).

import "fmt"

type eventID struct {
	rev    int64
	delete bool
	key    string
	value  string
}

func (e eventID) String() string {
	kind := "PUT"
	if e.delete {
		kind = "DELETE"
	}
	return fmt.Sprintf("%s %s=%q@%d", kind, e.key, e.value, e.rev)
}

func idOf(e Event) eventID {
	value := e.KV.Value
	if e.Delete {
		value = ""
	}
	return eventID{e.KV.ModRev, e.Delete, e.KV.Key, value}
}

func flatten(resps []Response) []eventID {
	var out []eventID
	for _, r := range resps {
		for _, e := range r.Events {
			out = append(out, idOf(e))
		}
	}
	return out
}

func sameKV(a *KV, b *KV) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func checkWatch(h *History) []string {
	var violations []string
	add := func(format string, args ...interface{}) {
		if len(violations) < 20 {
			violations = append(violations, fmt.Sprintf(format, args...))
		}
	}
	lastRev, progress := h.StartRev, int64(0)
	respOfRev := map[int64]int{}
	seen := map[eventID]bool{}
	state := map[string]*KV{}
	for i, r := range h.Watch {
		if r.Progress {
			if r.Header > progress {
				progress = r.Header
			}
			continue
		}
		for _, e := range r.Events {
			id := idOf(e)
			rev := e.KV.ModRev
			if rev < lastRev {
				add("ordered: %s after an event at %d", id, lastRev)
			}
			if rev <= h.StartRev {
				add("ordered: %s is at or before the watch's start revision %d", id, h.StartRev+1)
			}
			if rev <= progress {
				add("bookmarkable: %s after a progress notification at %d", id, progress)
			}
			if rev > r.Header {
				add("ordered: %s in a response whose header is %d", id, r.Header)
			}
			if j, ok := respOfRev[rev]; ok && j != i {
				add("atomic: the events of revision %d came in two responses", rev)
			}
			respOfRev[rev] = i
			if seen[id] {
				add("unique: %s delivered twice", id)
			}
			seen[id] = true
			prev := state[e.KV.Key]
			if !sameKV(prev, e.Prev) {
				add("reliable: %s has prev_kv %+v, the key was %+v", id, e.Prev, prev)
			}
			if e.Delete {
				delete(state, e.KV.Key)
			} else {
				version, create := int64(1), rev
				if prev != nil {
					version, create = prev.Version+1, prev.CreateRev
				}
				if e.KV.Version != version || e.KV.CreateRev != create {
					add("reliable: %s has version %d and create revision %d, want %d and %d", id, e.KV.Version, e.KV.CreateRev, version, create)
				}
				kv := e.KV
				state[e.KV.Key] = &kv
			}
			lastRev = rev
		}
	}

	// reliable: the events are exactly the writes that took effect
	want := map[eventID]*Op{}
	for _, o := range h.Ops {
		if !o.IsWrite() || !o.Succeeded {
			continue
		}
		switch o.Kind {
		case opCasDelete:
			want[eventID{o.Rev, true, o.Key, ""}] = o
		case opPut2:
			want[eventID{o.Rev, false, o.Key, o.Value}] = o
			want[eventID{o.Rev, false, o.Key2, o.Value2}] = o
		default:
			want[eventID{o.Rev, false, o.Key, o.Value}] = o
		}
	}
	for id := range want {
		if !seen[id] {
			add("reliable: the acknowledged write %s has no event", id)
		}
	}
	for id := range seen {
		if want[id] == nil {
			add("reliable: event %s matches no write that took effect", id)
		}
	}

	// resumable
	all := flatten(h.Watch)
	for from, resps := range h.Resumed {
		var expected []eventID
		for _, id := range all {
			if id.rev >= from {
				expected = append(expected, id)
			}
		}
		got := flatten(resps)
		if len(got) != len(expected) {
			add("resumable: a watch from %d got %d events, the first watch %d from there", from, len(got), len(expected))
			continue
		}
		for i := range got {
			if got[i] != expected[i] {
				add("resumable: a watch from %d got %s where the first watch had %s", from, got[i], expected[i])
				break
			}
		}
	}
	return violations
}
