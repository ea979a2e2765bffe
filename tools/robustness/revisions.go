package main

// One global revision, as a single etcd has it: an op invoked after another returned never sees an older
// header revision, a write invoked after another returned gets a higher revision than every write before it,
// no two writes share a revision (a put2 is one write), and nothing read is newer than its header.

import (
	"fmt"
	"sort"
)

func checkRevisions(ops []*Op) []string {
	var violations []string
	add := func(format string, args ...interface{}) {
		if len(violations) < 20 {
			violations = append(violations, fmt.Sprintf(format, args...))
		}
	}
	tookEffect := func(o *Op) bool { return o.IsWrite() && o.Succeeded }
	byRev := map[int64]*Op{}
	for _, o := range ops {
		if tookEffect(o) {
			if other, ok := byRev[o.Rev]; ok {
				add("revision reused: %s %s and %s %s both at %d", other.Kind, other.Key, o.Kind, o.Key, o.Rev)
			}
			byRev[o.Rev] = o
		}
		if o.Found && o.ModRev > o.Rev {
			add("read newer than its header: %s %s read mod revision %d under header %d", o.Kind, o.Key, o.ModRev, o.Rev)
		}
	}
	// answered ops only (a patched op's return time is when the watch saw it, not when it was answered)
	var answered []*Op
	for _, o := range ops {
		if !o.Patched {
			answered = append(answered, o)
		}
	}
	byReturn := append([]*Op(nil), answered...)
	sort.Slice(byReturn, func(i, j int) bool { return byReturn[i].Return < byReturn[j].Return })
	maxAny := make([]int64, len(byReturn)+1)
	maxWrite := make([]int64, len(byReturn)+1)
	for i, o := range byReturn {
		maxAny[i+1], maxWrite[i+1] = maxAny[i], maxWrite[i]
		if o.Rev > maxAny[i+1] {
			maxAny[i+1] = o.Rev
		}
		if tookEffect(o) && o.Rev > maxWrite[i+1] {
			maxWrite[i+1] = o.Rev
		}
	}
	for _, o := range answered {
		// ops that returned strictly before o was invoked
		n := sort.Search(len(byReturn), func(i int) bool { return byReturn[i].Return >= o.Call })
		if o.Rev < maxAny[n] {
			add("revision went back: %s %s invoked after an op answered at revision %d got header %d", o.Kind, o.Key, maxAny[n], o.Rev)
		}
		if tookEffect(o) && o.Rev <= maxWrite[n] {
			add("write revision not above an earlier write's: %s %s at %d, an earlier write at %d", o.Kind, o.Key, o.Rev, maxWrite[n])
		}
	}
	return violations
}
