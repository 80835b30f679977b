package main

import (
	"fmt"

	"github.com/renderfarm/renderfarm/render"
	"github.com/urfave/cli/v2"
)

// engineFlags are the host-tuning overrides every command that renders
// takes; each has a RENDERFARM_* variable so auto-scaling groups can set
// them in the instance's environment.
func engineFlags() []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: "cpus", EnvVars: []string{"RENDERFARM_CPUS"}, Usage: "usable CPUs (default: cgroup quota, else all)"},
		&cli.StringFlag{Name: "memory", EnvVars: []string{"RENDERFARM_MEMORY"}, Usage: "usable memory, e.g. 8GiB (default: cgroup limit, else MemTotal)"},
		&cli.IntFlag{Name: "slots", EnvVars: []string{"RENDERFARM_SLOTS"}, Usage: "renders at once (default: one per CPU)"},
		&cli.IntFlag{Name: "vips-threads", EnvVars: []string{"RENDERFARM_VIPS_THREADS"}, Usage: "libvips threads per render (default: CPUs / slots)"},
		&cli.StringFlag{Name: "memory-budget", EnvVars: []string{"RENDERFARM_MEMORY_BUDGET"}, Usage: "memory all running renders may hold, e.g. 6GiB (default: 75% of memory less 256MiB)"},
		&cli.Int64Flag{Name: "max-pixels", EnvVars: []string{"RENDERFARM_MAX_PIXELS"}, Usage: "largest source, width x height x frames", DefaultText: fmt.Sprint(render.DefaultMaxPixels)},
		&cli.StringFlag{Name: "max-bytes", EnvVars: []string{"RENDERFARM_MAX_BYTES"}, Usage: "largest encoded source, e.g. 64MiB", DefaultText: "64MiB"},
		&cli.StringFlag{Name: "shrink-on-load", EnvVars: []string{"RENDERFARM_SHRINK_ON_LOAD"}, Usage: "JPEG decode scales: fine (1/8, 1/4, 1/2, or M/8 where exact), coarse (1/8, 1/4, 1/2) or off (full decode, the most faithful)", DefaultText: "fine"},
		recipesFlag(),
	}
}

func recipesFlag() cli.Flag {
	return &cli.StringFlag{Name: "recipes", EnvVars: []string{"RENDERFARM_RECIPES"}, Usage: "YAML file of recipes laid over the built-in ones"}
}

func tuning(c *cli.Context) (render.Tuning, error) {
	o := render.Overrides{
		CPUs:         c.Float64("cpus"),
		Slots:        c.Int("slots"),
		VipsThreads:  c.Int("vips-threads"),
		MaxPixels:    c.Int64("max-pixels"),
		ShrinkOnLoad: render.ShrinkMode(c.String("shrink-on-load")),
	}
	for name, dst := range map[string]*int64{"memory": &o.Memory, "memory-budget": &o.MemoryBudget, "max-bytes": &o.MaxBytes} {
		if s := c.String(name); s != "" {
			n, err := render.ParseBytes(s)
			if err != nil {
				return render.Tuning{}, fmt.Errorf("--%s: %w", name, err)
			}
			*dst = n
		}
	}
	if o.CPUs < 0 || o.Slots < 0 || o.VipsThreads < 0 || o.MaxPixels < 0 {
		return render.Tuning{}, fmt.Errorf("tuning overrides must not be negative")
	}
	return render.Tune(o)
}
