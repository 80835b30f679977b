// Package job is the renderfarm.render task. For the worker, the Runner:
// fetch the source, render every variant, store each output, record a
// manifest in the journal, and only then let the worker acknowledge; it
// joins the render engine and storage, neither of which knows of the
// other. For the web tier and the CLI, the task's contract: the Request,
// Validate (the worker's own checks, before anything is published),
// Enqueue, and the Journal that reads the manifests back. The journal is
// out of reach of requests: New refuses a jobs' store that reaches it.
package job
