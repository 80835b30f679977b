package web

import (
	"bytes"
	"context"
	"embed"
	"html/template"
	"net/http"
	"time"

	"github.com/renderfarm/renderfarm/fleet"
	"github.com/renderfarm/renderfarm/storage"
)

//go:embed templates/status.html
var templates embed.FS

var pageTemplate = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"ago":     func(now time.Time, t *time.Time) string { return now.Sub(*t).Round(time.Second).String() + " ago" },
	"unacked": func() string { return fleet.UnackedNote },
}).ParseFS(templates, "templates/status.html"))

// pageCacheFor is how long one journal scan serves the status page: a
// room full of people refreshing it costs one listing, not one each.
const pageCacheFor = 3 * time.Second

// manifestScan bounds how many manifests of a day are listed for the page.
const manifestScan = 5000

type pageData struct {
	Now        time.Time
	Fleet      *fleet.Snapshot // nil: not configured, or not readable now
	FleetError string
	Renders    []pageRender
	Error      string
	built      time.Time
}

// fleetTimeout bounds the fleet part of a page build: stats replies are
// gathered for part of it, and a page must not hang on a slow broker.
const fleetTimeout = 3 * time.Second

type pageRender struct {
	*renderStatus
	Source   string
	Thumb    string // image URL: presigned for S3, through the API for files
	ThumbW   int
	ThumbH   int
	Duration time.Duration
}

// statusPage: recent renders with their thumbnails and state, for a
// person, server-rendered, no script.
func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	d := s.page(r.Context())
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		s.cfg.Logger.Error("web: status page", "err", err)
		writeError(w, &apiError{Status: http.StatusInternalServerError, Code: codeInternal, Message: "rendering the page"})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// Images come from this origin or from S3's presigned URLs; nothing runs.
	h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self' https: http:; style-src 'unsafe-inline'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) page(ctx context.Context) *pageData {
	s.pageMu.Lock()
	defer s.pageMu.Unlock()
	now := s.cfg.Now()
	if c := s.pageCached; c != nil && now.Sub(c.built) < pageCacheFor {
		return c
	}
	d := &pageData{Now: now, built: now}
	if s.cfg.Fleet != nil {
		fctx, cancel := context.WithTimeout(ctx, fleetTimeout)
		snap, err := s.cfg.Fleet.Snapshot(fctx)
		cancel()
		if err != nil {
			s.cfg.Logger.Warn("web: reading the fleet", "err", err)
			d.FleetError = "The broker cannot be asked about the fleet right now."
		}
		d.Fleet = snap
	}
	ms, err := s.cfg.Journal.Recent(ctx, s.cfg.RecentRenders, manifestScan)
	if err != nil {
		s.cfg.Logger.Warn("web: reading recent manifests", "err", err)
		d.Error = "The job journal cannot be read right now."
		return d // not cached: the next refresh tries again
	}
	for _, m := range ms {
		pr := pageRender{renderStatus: statusOf(m)}
		if m.Request != nil {
			pr.Source = m.Request.Source
		}
		if !m.Finished.IsZero() {
			pr.Duration = m.Finished.Sub(m.Started).Round(time.Millisecond)
		}
		s.thumbnail(ctx, &pr)
		d.Renders = append(d.Renders, pr)
	}
	s.pageCached = d
	return d
}

// thumbnail picks the smallest output as the render's picture. S3 outputs
// are linked by presigned URLs that outlive the page cache many times
// over; file outputs go through the API, which the browser calls with the
// credentials it already sent for the page.
func (s *Server) thumbnail(ctx context.Context, pr *pageRender) {
	best := -1
	for i, o := range pr.Outputs {
		if best < 0 || o.Width*o.Height < pr.Outputs[best].Width*pr.Outputs[best].Height {
			best = i
		}
	}
	if best < 0 {
		return
	}
	o := pr.Outputs[best]
	pr.ThumbW, pr.ThumbH = o.Width, o.Height
	if pr.ThumbW > 160 || pr.ThumbH > 160 { // shown in a 160 px box
		scale := 160 / float64(max(o.Width, o.Height))
		pr.ThumbW, pr.ThumbH = max(1, int(float64(o.Width)*scale)), max(1, int(float64(o.Height)*scale))
	}
	pr.Thumb = o.URL
	if loc, err := storage.ParseLocation(o.Key); err == nil && loc.Scheme == storage.SchemeS3 {
		if url, err := s.cfg.Store.PresignGet(ctx, loc, s.cfg.PresignTTL); err == nil {
			pr.Thumb = url
		}
	}
}
