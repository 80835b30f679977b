// Package job is the renderfarm.render task: fetch the source, render every
// variant, store each output, record a manifest, and only then let the
// worker acknowledge. It joins the render engine and storage for the
// worker; neither of those knows of the other.
package job
