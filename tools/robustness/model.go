package main

// Linearizability of the key-value operations, checked by porcupine against a per-key model of etcd: a
// key's state is (exists, value, mod revision), a write that takes effect sets the mod revision to its own
// revision, which must be above the previous one, and a read must see exactly the state. Keys are
// independent, so the history is partitioned by key (a put2 counts as a put on each of its two keys).

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

type keyState struct {
	Exists bool
	Value  string
	ModRev int64
}

type modelInput struct {
	Kind   string
	Key    string
	Value  string
	Expect int64
}

type modelOutput struct {
	Succeeded bool
	Rev       int64
	Found     bool
	Got       string
	ModRev    int64
}

func readMatches(s keyState, out modelOutput) bool {
	if out.Found != s.Exists {
		return false
	}
	return !s.Exists || (out.Got == s.Value && out.ModRev == s.ModRev)
}

// written: a write that took effect at out.Rev, which must be above the key's mod revision, leaving `next`.
func written(s keyState, out modelOutput, next keyState) (bool, keyState) {
	if out.Rev <= s.ModRev {
		return false, s
	}
	return true, next
}

// conditional: a transaction whose comparison `held` (or not): then `next` at out.Rev, else its read of the key.
func conditional(s keyState, held bool, out modelOutput, next keyState) (bool, keyState) {
	if out.Succeeded != held {
		return false, s
	}
	if !held {
		return readMatches(s, out), s
	}
	return written(s, out, next)
}

func step(s keyState, in modelInput, out modelOutput) (bool, keyState) {
	put := keyState{true, in.Value, out.Rev}
	switch in.Kind {
	case opGet:
		return readMatches(s, out), s
	case opPut, opPut2:
		return written(s, out, put)
	case opCasPut:
		return conditional(s, s.ModRev == in.Expect, out, put)
	case opCreate:
		return conditional(s, !s.Exists, out, put)
	case opCasDelete:
		return conditional(s, s.Exists && s.ModRev == in.Expect, out, keyState{})
	}
	return false, s
}

var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(modelInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return keyState{} },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		return step(state.(keyState), input.(modelInput), output.(modelOutput))
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(modelInput), output.(modelOutput)
		return fmt.Sprintf("%s(%s %q expect=%d) -> ok=%v rev=%d found=%v %q@%d", in.Kind, in.Key, in.Value, in.Expect, out.Succeeded, out.Rev, out.Found, out.Got, out.ModRev)
	},
	DescribeState: func(state interface{}) string {
		s := state.(keyState)
		if !s.Exists {
			return "absent"
		}
		return fmt.Sprintf("%q@%d", s.Value, s.ModRev)
	},
}

// porcupineHistory: the ops whose outcome is known (answered, or patched from the watch), one per key touched.
func porcupineHistory(ops []*Op) []porcupine.Operation {
	var out []porcupine.Operation
	for _, o := range ops {
		if o.Unknown() || o.Kind == opList {
			continue
		}
		res := modelOutput{Succeeded: o.Succeeded, Rev: o.Rev, Found: o.Found, Got: o.Got, ModRev: o.ModRev}
		add := func(key, value string) {
			out = append(out, porcupine.Operation{
				ClientId: o.Client,
				Input:    modelInput{Kind: o.Kind, Key: key, Value: value, Expect: o.Expect},
				Call:     o.Call,
				Output:   res,
				Return:   o.Return,
			})
		}
		add(o.Key, o.Value)
		if o.Kind == opPut2 {
			add(o.Key2, o.Value2)
		}
	}
	return out
}

// illegalKeys: the keys whose own history porcupine finds not linearizable (for the report of a failure).
func illegalKeys(ops []*Op, timeout time.Duration) []string {
	var keys []string
	for _, part := range kvModel.Partition(porcupineHistory(ops)) {
		if porcupine.CheckOperationsTimeout(kvModel, part, timeout) == porcupine.Illegal {
			keys = append(keys, part[0].Input.(modelInput).Key)
		}
	}
	return keys
}

// checkLinearizable returns porcupine's verdict ("Ok", "Illegal" or "Unknown" on timeout) and, when it is
// not Ok and vizPath is set, writes porcupine's HTML visualisation there.
func checkLinearizable(ops []*Op, timeout time.Duration, vizPath string) string {
	result, info := porcupine.CheckOperationsVerbose(kvModel, porcupineHistory(ops), timeout)
	if result != porcupine.Ok && vizPath != "" {
		_ = porcupine.VisualizePath(kvModel, info, vizPath)
	}
	return string(result)
}
