package main

// Lists: a list answered at revision R (the one it asked for, else its header's) must be exactly the
// prefix's state at R, which the watch's events replay (they are checked to be exactly the writes that took
// effect): the first `limit` keys in order with their values, mod and create revisions and versions, the
// total count, and `more` when keys were left out. On the routed target the prefix spans five databases, so
// this is one snapshot across all of them.

import (
	"fmt"
	"sort"
)

// revState: the prefix's state after one revision.
type revState struct {
	rev  int64
	keys map[string]KV
}

// replayStates replays the watch and returns the prefix's state after each revision, in revision order. A
// response may carry many revisions (catch-up after a reconnect), so states are cut per revision.
func replayStates(h *History) []revState {
	cur := map[string]KV{}
	out := []revState{{rev: h.StartRev, keys: map[string]KV{}}}
	var rev int64
	snapshot := func() {
		snap := make(map[string]KV, len(cur))
		for k, v := range cur {
			snap[k] = v
		}
		out = append(out, revState{rev: rev, keys: snap})
	}
	for _, r := range h.Watch {
		for _, e := range r.Events {
			if rev != 0 && e.KV.ModRev != rev {
				snapshot()
			}
			rev = e.KV.ModRev
			if e.Delete {
				delete(cur, e.KV.Key)
			} else {
				cur[e.KV.Key] = e.KV
			}
		}
	}
	if rev != 0 {
		snapshot()
	}
	return out
}

// stateAt: the state after the newest revision at or below rev.
func stateAt(states []revState, rev int64) map[string]KV {
	i := sort.Search(len(states), func(i int) bool { return states[i].rev > rev })
	return states[i-1].keys
}

func checkLists(h *History) []string {
	var violations []string
	add := func(format string, args ...interface{}) {
		if len(violations) < 20 {
			violations = append(violations, fmt.Sprintf(format, args...))
		}
	}
	states := replayStates(h)
	for _, o := range h.Ops {
		if o.Kind != opList || o.Err != "" {
			continue
		}
		at := o.Rev
		if o.AtRev > 0 {
			at = o.AtRev
		}
		if at <= h.StartRev {
			continue
		}
		state := stateAt(states, at)
		names := make([]string, 0, len(state))
		for k := range state {
			names = append(names, k)
		}
		sort.Strings(names)
		want := names
		if o.Limit > 0 && int64(len(want)) > o.Limit {
			want = want[:o.Limit]
		}
		what := fmt.Sprintf("list (limit %d) at %d", o.Limit, at)
		if o.Count != int64(len(names)) {
			add("list: %s counted %d keys, the state then has %d", what, o.Count, len(names))
		}
		if o.More != (len(want) < len(names)) {
			add("list: %s said more=%v with %d of %d keys", what, o.More, len(want), len(names))
		}
		if len(o.Items) != len(want) {
			add("list: %s returned %d keys, want %d (%v)", what, len(o.Items), len(want), want)
			continue
		}
		for i, kv := range o.Items {
			if kv != state[want[i]] {
				add("list: %s returned %+v at position %d, the state then has %+v", what, kv, i, state[want[i]])
				break
			}
		}
	}
	return violations
}
