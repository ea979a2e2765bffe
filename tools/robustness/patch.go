package main

// Ops whose call failed have an unknown outcome. Every value written is unique, so the watch says which of
// them took effect and at which revision (a cas-delete is known by its key and the mod revision it
// compared): those become writes that succeeded, returning when the watch delivered them (they took effect
// before that); the rest did not happen and leave the history. Failed reads and lists leave it too.
// Values are unique, so a put is matched exactly; several cas-deletes may compare the same mod revision, so a
// delete event goes to an unknown one only if no answered op made it and it came after the call.

import "fmt"

type seenAt struct {
	rev int64
	at  int64
}

type patchStats struct {
	Unknown int `json:"unknown"`
	Patched int `json:"patched"`
	Dropped int `json:"dropped"`
}

func deleteKey(key string, prevMod int64) string { return fmt.Sprintf("%s\x00%d", key, prevMod) }

func patch(h *History) (patchStats, []string) {
	puts := map[string]seenAt{}
	deletes := map[string]seenAt{}
	for _, r := range h.Watch {
		for _, e := range r.Events {
			if e.Delete {
				if e.Prev != nil {
					deletes[deleteKey(e.KV.Key, e.Prev.ModRev)] = seenAt{e.KV.ModRev, r.At}
				}
			} else {
				puts[e.KV.Value] = seenAt{e.KV.ModRev, r.At}
			}
		}
	}
	// a delete is known by its key and the mod revision it removed; one that an answered cas-delete made is
	// not another's (clients with the same stale view send the same cas-delete, and only one can succeed)
	for _, o := range h.Ops {
		if o.Err == "" && o.Kind == opCasDelete && o.Succeeded {
			delete(deletes, deleteKey(o.Key, o.Expect))
		}
	}
	var st patchStats
	var violations []string
	kept := h.Ops[:0]
	for _, o := range h.Ops {
		if o.Err == "" {
			kept = append(kept, o)
			continue
		}
		st.Unknown++
		var seen seenAt
		found := false
		switch o.Kind {
		case opGet, opList:
		case opCasDelete:
			seen, found = deletes[deleteKey(o.Key, o.Expect)]
			// one made before this call was another's
			found = found && seen.at >= o.Call
			if found {
				delete(deletes, deleteKey(o.Key, o.Expect))
			}
		case opPut2:
			a, okA := puts[o.Value]
			b, okB := puts[o.Value2]
			if okA != okB {
				violations = append(violations, fmt.Sprintf("atomic: a failed put2 of %s and %s took effect on one key only (revisions %d and %d)", o.Key, o.Key2, a.rev, b.rev))
			}
			seen, found = a, okA && okB
		default:
			seen, found = puts[o.Value]
		}
		if !found {
			st.Dropped++
			continue
		}
		if seen.at < o.Call {
			violations = append(violations, fmt.Sprintf("watch: the event of %s %s (revision %d) arrived before the call was made", o.Kind, o.Key, seen.rev))
		}
		o.Patched, o.Succeeded, o.Rev, o.Return = true, true, seen.rev, seen.at
		st.Patched++
		kept = append(kept, o)
	}
	h.Ops = kept
	return st, violations
}
