package main

// The checks must catch a broken server. Each case below is a small history such a server would produce
// (a stale read, a lost or invented event, a revision split across responses, ...); the self-test runs the
// same checks on it and reports whether the expected kind of violation was found, and that the correct
// history passes.

import (
	"strings"
	"time"
)

type selfTestCase struct {
	Name       string   `json:"name"`
	Want       string   `json:"want"`
	Violations []string `json:"violations"`
	Caught     bool     `json:"caught"`
}

type selfTestReport struct {
	OK    bool           `json:"ok"`
	Cases []selfTestCase `json:"cases"`
}

func kv(key, value string, mod, create, version int64) KV {
	return KV{Key: key, Value: value, ModRev: mod, CreateRev: create, Version: version}
}

func ptr(k KV) *KV { return &k }

// validHistory: two clients on k1 and k2 from revision 10; one failed put took effect (seen at 16), one did not.
func validHistory() *History {
	ops := []*Op{
		{Client: 0, Kind: opPut, Key: "k1", Value: "a", Call: 1, Return: 2, Rev: 11, Succeeded: true},
		{Client: 1, Kind: opGet, Key: "k1", Call: 3, Return: 4, Rev: 11, Found: true, Got: "a", ModRev: 11},
		{Client: 0, Kind: opCasPut, Key: "k1", Value: "b", Expect: 11, Call: 5, Return: 6, Rev: 12, Succeeded: true},
		{Client: 1, Kind: opCasPut, Key: "k1", Value: "c", Expect: 11, Call: 5, Return: 7, Rev: 12, Found: true, Got: "b", ModRev: 12},
		{Client: 0, Kind: opPut2, Key: "k1", Value: "d", Key2: "k2", Value2: "e", Call: 8, Return: 9, Rev: 13, Succeeded: true},
		{Client: 1, Kind: opCasDelete, Key: "k2", Expect: 13, Call: 10, Return: 11, Rev: 14, Succeeded: true},
		{Client: 0, Kind: opCreate, Key: "k2", Value: "f", Call: 12, Return: 13, Rev: 15, Succeeded: true},
		{Client: 1, Kind: opPut, Key: "k1", Value: "g", Call: 14, Return: 15, Err: "context deadline exceeded"},
		{Client: 0, Kind: opPut, Key: "k2", Value: "h", Call: 15, Return: 16, Err: "context deadline exceeded"},
		{Client: 2, Kind: opList, Limit: 1, Call: 10, Return: 10, Rev: 13, Items: []KV{kv("k1", "d", 13, 11, 3)}, Count: 2, More: true},
		{Client: 2, Kind: opList, AtRev: 12, Call: 14, Return: 14, Rev: 15, Items: []KV{kv("k1", "b", 12, 11, 2)}, Count: 1},
	}
	watch := []Response{
		{Header: 11, At: 2, Events: []Event{{KV: kv("k1", "a", 11, 11, 1)}}},
		{Header: 12, At: 6, Events: []Event{{KV: kv("k1", "b", 12, 11, 2), Prev: ptr(kv("k1", "a", 11, 11, 1))}}},
		{Header: 13, At: 9, Events: []Event{
			{KV: kv("k1", "d", 13, 11, 3), Prev: ptr(kv("k1", "b", 12, 11, 2))},
			{KV: kv("k2", "e", 13, 13, 1)},
		}},
		{Header: 14, At: 11, Events: []Event{{Delete: true, KV: KV{Key: "k2", ModRev: 14}, Prev: ptr(kv("k2", "e", 13, 13, 1))}}},
		{Header: 15, At: 13, Events: []Event{{KV: kv("k2", "f", 15, 15, 1)}}},
		{Header: 15, At: 14, Progress: true},
		{Header: 16, At: 20, Events: []Event{{KV: kv("k1", "g", 16, 11, 4), Prev: ptr(kv("k1", "d", 13, 11, 3))}}},
	}
	h := &History{Ops: ops, StartRev: 10, FinalRev: 16, Watch: watch, Resumed: map[int64][]Response{}}
	h.Resumed[11] = append([]Response(nil), watch...)
	h.Resumed[13] = append([]Response(nil), watch[2:]...)
	return h
}

func runSelfTest() selfTestReport {
	cases := []struct {
		name, want string
		broken     func(h *History)
	}{
		{"a correct history", "", func(h *History) {}},
		{"a correct history whose catch-up response carries two revisions", "", func(h *History) {
			merged := Response{Header: 15, At: 13, Events: append(append([]Event(nil), h.Watch[3].Events...), h.Watch[4].Events...)}
			h.Watch = append(append(append([]Response(nil), h.Watch[:3]...), merged), h.Watch[5:]...)
			h.Resumed[11], h.Resumed[13] = h.Watch, h.Watch[2:]
			h.Ops = append(h.Ops, &Op{Client: 2, Kind: opList, AtRev: 14, Call: 14, Return: 14, Rev: 15, Items: []KV{kv("k1", "d", 13, 11, 3)}, Count: 1})
		}},
		{"a correct history with a failed cas-delete that compared what an answered one deleted", "", func(h *History) {
			h.Ops = append(h.Ops, &Op{Client: 2, Kind: opCasDelete, Key: "k2", Expect: 13, Call: 10, Return: 12, Err: "context deadline exceeded"})
		}},
		{"a stale read (the value before the last write, under a current header)", "linearizability", func(h *History) {
			h.Ops = append(h.Ops, &Op{Client: 2, Kind: opGet, Key: "k2", Call: 14, Return: 15, Rev: 15, Found: true, Got: "e", ModRev: 13})
		}},
		{"a transaction whose comparison held but that failed", "linearizability", func(h *History) {
			h.Ops = append(h.Ops, &Op{Client: 2, Kind: opCasPut, Key: "k2", Value: "x", Expect: 15, Call: 16, Return: 17, Rev: 16, Found: true, Got: "f", ModRev: 15})
		}},
		{"an acknowledged write with no event", "reliable", func(h *History) {
			h.Watch = append(h.Watch[:4:4], h.Watch[5:]...)
			h.Resumed[11], h.Resumed[13] = h.Watch, h.Watch[2:]
		}},
		{"an event no write made", "reliable", func(h *History) {
			h.Watch = append(h.Watch, Response{Header: 17, At: 21, Events: []Event{{KV: kv("k3", "zz", 17, 17, 1)}}})
			h.Resumed[11], h.Resumed[13] = h.Watch, h.Watch[2:]
		}},
		{"a wrong prev_kv", "reliable", func(h *History) {
			h.Watch[6].Events[0].Prev = ptr(kv("k1", "b", 12, 11, 2))
		}},
		{"an event delivered twice", "unique", func(h *History) {
			h.Watch = append(h.Watch[:2:2], h.Watch[1:]...)
		}},
		{"a revision's events split over two responses", "atomic", func(h *History) {
			r := h.Watch[2]
			first := Response{Header: r.Header, At: r.At, Events: r.Events[:1]}
			second := Response{Header: r.Header, At: r.At, Events: r.Events[1:]}
			h.Watch = append(append(append([]Response(nil), h.Watch[:2]...), first, second), h.Watch[3:]...)
		}},
		{"a failed put2 that took effect on one key", "atomic", func(h *History) {
			h.Ops[4].Err = "context deadline exceeded"
			h.Watch[2].Events = h.Watch[2].Events[:1]
		}},
		{"events out of revision order", "ordered", func(h *History) {
			h.Watch[3], h.Watch[4] = h.Watch[4], h.Watch[3]
		}},
		{"a progress notification ahead of an event", "bookmarkable", func(h *History) {
			h.Watch[5].Header = 16
		}},
		{"a header revision that went back", "revision", func(h *History) {
			h.Ops = append(h.Ops, &Op{Client: 2, Kind: opGet, Key: "k2", Call: 12, Return: 13, Rev: 13})
		}},
		{"a list that counts a key its snapshot does not have", "list", func(h *History) {
			h.Ops[9].Count = 3
		}},
		{"a list pinned to an old revision that shows a newer value", "list", func(h *History) {
			h.Ops[10].Items = []KV{kv("k1", "d", 13, 11, 3)}
		}},
		{"a list that leaves out a key without saying there are more", "list", func(h *History) {
			h.Ops[9].More = false
		}},
		{"a resumed watch that misses an event", "resumable", func(h *History) {
			h.Resumed[13] = append(append([]Response(nil), h.Resumed[13][:1]...), h.Resumed[13][2:]...)
		}},
	}
	rep := selfTestReport{OK: true}
	for _, c := range cases {
		h := validHistory()
		c.broken(h)
		r := check(h, 10*time.Second, "")
		caught := len(r.Violations) == 0
		if c.want != "" {
			caught = false
			for _, v := range r.Violations {
				if strings.Contains(v, c.want) {
					caught = true
				}
			}
		}
		rep.OK = rep.OK && caught
		rep.Cases = append(rep.Cases, selfTestCase{Name: c.name, Want: c.want, Violations: r.Violations, Caught: caught})
	}
	return rep
}
