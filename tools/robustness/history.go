package main

// The history a run records: every client operation with its invocation and return times, and what the
// watchers received. The checks (model.go, watch.go, revisions.go) read only this, so the self-test
// (selftest.go) can feed them histories that a broken server would produce.

// Operation kinds, as kube-apiserver's storage layer issues them (client/v3/kubernetes): a linearizable Get,
// an unconditional Put, OptimisticPut (If mod(k)==r Then Put Else Get), OptimisticDelete (If mod(k)==r Then
// Delete Else Get), a create (If mod(k)==0 Then Put Else Get), a Txn putting two keys at once, and a list of
// the prefix (with or without a limit, at the newest revision or pinned to an earlier one, as a paged list is).
const (
	opGet       = "get"
	opPut       = "put"
	opCasPut    = "cas-put"
	opCasDelete = "cas-delete"
	opCreate    = "create"
	opPut2      = "put2"
	opList      = "list"
)

// Op is one client call. Put2 writes Key and Key2 (values Value and Value2) in one transaction.
type Op struct {
	Client int    `json:"client"`
	Kind   string `json:"kind"`
	Key    string `json:"key"`
	Key2   string `json:"key2,omitempty"`
	Value  string `json:"value,omitempty"`
	Value2 string `json:"value2,omitempty"`
	// Expect is the mod revision a cas-put or cas-delete compares against (0: the key does not exist).
	Expect int64 `json:"expect,omitempty"`
	// Call and Return: nanoseconds since the run began. Return of an op whose outcome is unknown is patched
	// from the watch (patch.go).
	Call   int64 `json:"call"`
	Return int64 `json:"return"`
	// Err: the call failed (a timeout, the server down): its outcome is unknown.
	Err string `json:"err,omitempty"`
	// Rev: the response header's revision (for a write that took effect, the write's revision).
	Rev int64 `json:"rev,omitempty"`
	// Succeeded: a transaction's comparison held (cas-put, cas-delete, create); true for put and put2.
	Succeeded bool `json:"succeeded,omitempty"`
	// Found, Value/ModRev of what a get (or a failed transaction's Else branch) read.
	Found  bool   `json:"found,omitempty"`
	Got    string `json:"got,omitempty"`
	ModRev int64  `json:"modRev,omitempty"`
	// Patched: the outcome was unknown and the watch showed the write took effect at Rev.
	Patched bool `json:"patched,omitempty"`
	// A list (Key is the prefix): its limit (0: none), the revision asked for (0: the newest), and what
	// came back: the keys, the total count and whether there were more.
	Limit int64 `json:"limit,omitempty"`
	AtRev int64 `json:"atRev,omitempty"`
	Items []KV  `json:"items,omitempty"`
	Count int64 `json:"count,omitempty"`
	More  bool  `json:"more,omitempty"`
}

// IsWrite: the op may change the store.
func (o *Op) IsWrite() bool { return o.Kind != opGet && o.Kind != opList }

// Unknown: the call failed, so whether it took effect is known only from the watch.
func (o *Op) Unknown() bool { return o.Err != "" && !o.Patched }

// KV is a key's state as an event or prev_kv carries it.
type KV struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	ModRev    int64  `json:"modRev"`
	CreateRev int64  `json:"createRev"`
	Version   int64  `json:"version"`
}

// Event is one watch event.
type Event struct {
	Delete bool `json:"delete,omitempty"`
	KV     KV   `json:"kv"`
	Prev   *KV  `json:"prev,omitempty"`
}

// Response is one watch response as received: its events, or a progress notification.
type Response struct {
	Header   int64   `json:"header"`
	Progress bool    `json:"progress,omitempty"`
	Events   []Event `json:"events,omitempty"`
	// At: nanoseconds since the run began when it was received.
	At int64 `json:"at"`
}

// History is what one run saw.
type History struct {
	Ops []*Op `json:"ops"`
	// StartRev: the revision before the traffic; the watch starts just after it. FinalRev: after it.
	StartRev int64 `json:"startRev"`
	FinalRev int64 `json:"finalRev"`
	// Watch: the watcher that ran during the traffic (resuming across server restarts).
	Watch []Response `json:"watch"`
	// Resumed: watches opened after the traffic from the revision in their key, to FinalRev.
	Resumed map[int64][]Response `json:"resumed"`
}
