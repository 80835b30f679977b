package testenv

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

var magenta = color.RGBA{255, 0, 255, 255}

// basicAuthSite serves a page with a solid magenta 120x80 <img>, both
// behind HTTP Basic auth (user:pass), as the status page is. The image
// comes late, so the screenshot shows that it waits for images.
func basicAuthSite(t *testing.T) string {
	img := image.NewRGBA(image.Rect(0, 0, 120, 80))
	draw.Draw(img, img.Bounds(), image.NewUniform(magenta), image.Point{}, draw.Src)
	var dot bytes.Buffer
	if err := png.Encode(&dot, img); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "pass" {
			w.Header().Set("WWW-Authenticate", `Basic realm="status"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/":
			w.Write([]byte(`<!doctype html><body style="margin:0;background:#fff"><p>all renders done</p><img src="/dot.png" width="120" height="80"></body>`))
		case "/dot.png":
			time.Sleep(500 * time.Millisecond)
			w.Header().Set("Content-Type", "image/png")
			w.Write(dot.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func withUser(t *testing.T, rawURL, user, pass string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(user, pass)
	return u.String() + "/"
}

func TestChromiumScreenshotBasicAuth(t *testing.T) {
	site := basicAuthSite(t)
	t.Run("credentials in the URL show the image", func(t *testing.T) {
		t.Parallel()
		shot := Screenshot(t, withUser(t, site, "user", "pass"), 400, 300)
		if n := CountColour(shot, magenta, 8); n < 120*80*9/10 {
			t.Fatalf("screenshot shows %d magenta pixels, want the 120x80 image (%d)", n, 120*80)
		}
	})
	t.Run("a wrong password shows no image", func(t *testing.T) {
		t.Parallel()
		shot := Screenshot(t, withUser(t, site, "user", "wrong"), 400, 300)
		if n := CountColour(shot, magenta, 8); n > 0 {
			t.Fatalf("a wrong password still shows %d magenta pixels", n)
		}
	})
}

func TestChromiumDumpDOM(t *testing.T) {
	dom := DumpDOM(t, withUser(t, basicAuthSite(t), "user", "pass"))
	if !strings.Contains(dom, "<p>all renders done</p>") {
		t.Fatalf("DOM lacks the page's text:\n%s", dom)
	}
}
