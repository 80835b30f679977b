// Package worker runs Celery tasks from RabbitMQ with Go handlers, so that
// Python applications using Celery's stock client, and Celery's own tools
// (celery inspect, celery events, Flower), work with renderfarm workers
// unchanged.
//
// A Worker is a set of small duties, each in its own file with a start and
// a shutdown: the consumer (consumer.go) takes deliveries and runs each in
// a slot (execute.go: the handler, its result, retry and settling), the
// heartbeat (heartbeat.go) and event sender (events.go) keep monitors
// informed, and the control server (control.go) answers celery
// inspect/control. Their dependencies come in one deps value built by the
// Worker; the requests and counters they share live in state.go, which
// owns their lock. A task whose delivery's channel has died is never
// started: the broker has already given it to another worker. A message
// that may have started before is looked up in a StartLedger (starts.go)
// and runs alone, so a task that kills its worker is dead-lettered after
// MaxStarts starts without charging the tasks that travelled with it.
package worker
