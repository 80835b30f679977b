// Package job is the contract of the renderfarm.render task, for everyone
// who sends or reads one: the Request, Validate (the worker's own checks,
// run by the web tier before anything is published), Enqueue, and the
// Manifest and Journal that record each task. It knows nothing of the
// worker runtime; the worker's side, the Runner that executes the task, is
// job/runner.
package job
