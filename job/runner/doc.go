// Package runner executes renderfarm.render tasks in a worker: fetch the
// source, render every variant, store each output, record a manifest in
// the journal, and only then let the worker acknowledge. It joins the
// render engine and storage, neither of which knows of the other. The
// journal is out of reach of requests: New refuses a jobs' store that
// reaches it. The journal also keeps the worker's start ledger (starts.go)
// and a render's FAILURE manifest when it is dead-lettered for killing
// its workers.
package runner
