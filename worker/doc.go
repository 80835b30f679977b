// Package worker runs Celery tasks from RabbitMQ with Go handlers, so that
// Python applications using Celery's stock client, and Celery's own tools
// (celery inspect, celery events, Flower), work with renderfarm workers
// unchanged.
//
// A Worker is a set of small duties, each in its own file with a start and
// a stop: the consumer (consumer.go) takes deliveries and runs them in
// slots, the heartbeat (heartbeat.go) and event sender (events.go) keep
// monitors informed, and the control server (control.go) answers celery
// inspect/control. Everything they share lives in state.go.
package worker
