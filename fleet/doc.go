// Package fleet is what the farm looks like from outside: the workers as
// Celery's remote control and events show them (any Celery-compatible
// worker, ours or Python's), the depth of the queues, and the scaling
// maths that turns both into a desired instance count.
//
// It talks to the workers only over the broker, as `celery inspect` and
// `celery events` do, so it imports broker and broker/celery and never the
// worker: what it reads is the wire contract, not our implementation.
package fleet
