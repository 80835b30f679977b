package render

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/davidbyttow/govips/v2/vips"
)

// jpegtran losslessly rewrites a testdata JPEG (libjpeg-turbo-progs, which
// make setup installs): the way to get progressive files with restart
// markers, which libvips cannot write.
func jpegtran(t *testing.T, file string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("jpegtran", append(args, "../testdata/"+file)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("jpegtran %v %s: %v (run make setup)", args, file, err)
	}
	return out
}

// progressiveFixtures are progressive JPEGs unlike each other in the ways
// the AC-scan walk must cope with: chroma subsampled or not, grey (one
// component), and restart markers inside every scan.
func progressiveFixtures(t *testing.T) map[string][]byte {
	t.Helper()
	img, err := vips.LoadImageFromBuffer(testdata(t, "photo.jpg"), loadParams(1))
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	p := vips.NewJpegExportParams()
	p.Quality, p.Interlace, p.SubsampleMode = 95, true, vips.VipsForeignSubsampleOff
	full, _, err := img.ExportJpeg(p)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"4:2:0":    testdata(t, "photo-progressive.jpg"),
		"4:4:4":    full,
		"grey":     jpegtran(t, "gray.jpg", "-progressive"),
		"restarts": jpegtran(t, "photo.jpg", "-progressive", "-restart", "1"),
		"icc":      jpegtran(t, "adobergb.jpg", "-progressive", "-copy", "all"),
	}
}

// noFullIDCT: every component's 1/8 IDCT reads only its DC coefficient.
func noFullIDCT() ([]byte, bool) { return nil, true }

// scanHeaders lists the spectral selection (Ss, Se) and first component
// id of every scan in a JPEG stream.
func scanHeaders(t *testing.T, src []byte) [][3]byte {
	t.Helper()
	var scans [][3]byte
	for i := 2; i+2 <= len(src); {
		if src[i] != 0xFF {
			t.Fatalf("no marker at %d", i)
		}
		m := src[i+1]
		switch {
		case m == 0xD9:
			return scans
		case m == 0x01 || m >= 0xD0 && m <= 0xD7:
			i += 2
			continue
		}
		n := int(src[i+2])<<8 | int(src[i+3])
		if m != 0xDA {
			i += 2 + n
			continue
		}
		p := i + 5 + 2*int(src[i+4])
		scans = append(scans, [3]byte{src[p], src[p+1], src[i+5]})
		if i = scanEnd(src, i+2+n); i < 0 {
			t.Fatal("scan runs off the end")
		}
	}
	t.Fatal("no EOI")
	return nil
}

// Left without its AC scans, a progressive JPEG decodes at 1/8 to exactly
// the pixels of the whole file, and the stream kept is the DC scans only.
func TestJPEGDCOnlyKeepsPixels(t *testing.T) {
	start(1)
	for name, src := range progressiveFixtures(t) {
		t.Run(name, func(t *testing.T) {
			full, ok := jpegFullIDCT(src, 1)
			if !ok {
				t.Fatal("cannot read the header")
			}
			dc := jpegDCOnly(src, jpegMaxScans, func() ([]byte, bool) { return full, true })
			if dc == nil {
				t.Fatal("a progressive JPEG was not reduced")
			}
			if len(dc) >= len(src) {
				t.Errorf("reduced stream is %d of %d bytes", len(dc), len(src))
			}
			// Kept: the DC scans and the AC scans of components libjpeg
			// scales up with a larger IDCT; nothing else.
			needed := 0
			for _, s := range scanHeaders(t, src) {
				if s[0] == 0 || bytes.IndexByte(full, s[2]) >= 0 {
					needed++
				}
			}
			kept := scanHeaders(t, dc)
			if len(kept) != needed {
				t.Errorf("kept %d scans, %d are read at 1/8", len(kept), needed)
			}
			for _, s := range kept {
				if s[0] != 0 && bytes.IndexByte(full, s[2]) < 0 {
					t.Errorf("kept an AC scan (%d..%d) of component %d, whose 1/8 IDCT reads only DC", s[0], s[1], s[2])
				}
			}
			decode := func(stream []byte) *vips.ImageRef {
				img, err := vips.LoadImageFromBuffer(src, loadParams(1))
				if err != nil {
					t.Fatal(err)
				}
				if err := decodeJPEGStream(stream, img, 1, jpegMaxScans); err != nil {
					t.Fatal(err)
				}
				return img
			}
			whole, reduced := decode(src), decode(dc)
			defer whole.Close()
			defer reduced.Close()
			if whole.Width() != reduced.Width() || whole.Height() != reduced.Height() || !bytes.Equal(pixels(t, whole), pixels(t, reduced)) {
				t.Errorf("1/8 decode without AC scans differs from the whole file's (%dx%d vs %dx%d)",
					reduced.Width(), reduced.Height(), whole.Width(), whole.Height())
			}
			if whole.HasICCProfile() != reduced.HasICCProfile() {
				t.Errorf("ICC profile: whole %v, reduced %v", whole.HasICCProfile(), reduced.HasICCProfile())
			}
		})
	}
}

// Whatever the walk cannot vouch for goes to libjpeg whole, so its errors
// and limits hold at 1/8 as at any other scale.
func TestJPEGDCOnlyFallsBack(t *testing.T) {
	start(1)
	prog := testdata(t, "photo-progressive.jpg")
	all := scanHeaders(t, prog)
	// Cut inside the last scan, an AC refinement the reduced stream drops.
	cut := bytes.LastIndex(prog, []byte{0xFF, 0xDA})
	if all[len(all)-1][0] == 0 || cut < 0 {
		t.Fatal("fixture's last scan is not an AC scan")
	}
	truncated := prog[:cut+(len(prog)-cut)/2]
	// An AC scan naming a component the frame does not have: libjpeg
	// refuses it, so the walk must not drop it unseen.
	strange := bytes.Clone(prog)
	ac := bytes.Index(strange[bytes.Index(strange, []byte{0xFF, 0xDA})+2:], []byte{0xFF, 0xDA})
	if ac < 0 {
		t.Fatal("fixture has one scan")
	}
	ac += bytes.Index(strange, []byte{0xFF, 0xDA}) + 2
	strange[ac+5] = 9
	tests := []struct {
		name     string
		src      []byte
		maxScans int
		err      string // decodeJPEG's error at 1/8; "" for success
	}{
		{"baseline", testdata(t, "photo.jpg"), jpegMaxScans, ""},
		{"truncated in an AC scan", truncated, jpegMaxScans, "Premature end of JPEG file"},
		{"more scans than the limit", prog, 5, "more than 5 progressive scans"},
		{"AC scan of no component", strange, jpegMaxScans, "Invalid component ID 9 in SOS"},
		{"cut before any scan", prog[:200], jpegMaxScans, "truncated or corrupt"},
		{"not a JPEG", []byte("GIF89a, not a JPEG at all"), jpegMaxScans, "truncated or corrupt"},
	}
	// A baseline JPEG is left whole before libjpeg is asked anything.
	asked := false
	if jpegDCOnly(testdata(t, "photo.jpg"), jpegMaxScans, func() ([]byte, bool) { asked = true; return nil, true }) != nil || asked {
		t.Errorf("baseline: reduced, or asked for its IDCT sizes (%v)", asked)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if dc := jpegDCOnly(tt.src, tt.maxScans, noFullIDCT); dc != nil {
				t.Fatalf("reduced to %d bytes; want the whole file decoded", len(dc))
			}
			img, err := vips.LoadImageFromBuffer(prog, loadParams(1))
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			err = decodeJPEG(tt.src, img, 1, tt.maxScans)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("decode: %v", err)
			case tt.err != "" && (!errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("decode: %v; want ErrCorrupt saying %q", err, tt.err)
			}
		})
	}
}

// FuzzJPEGDCOnly: on any input the walk returns nil or a stream made of
// the input's own segments, SOI first and EOI last, holding only DC scans.
func FuzzJPEGDCOnly(f *testing.F) {
	for _, name := range []string{"photo.jpg", "photo-progressive.jpg", "truncated.jpg", "gray.jpg"} {
		f.Add(testdata(f, name))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		dc := jpegDCOnly(src, 20, noFullIDCT)
		if dc == nil {
			return
		}
		if len(dc) > len(src) || !bytes.HasPrefix(dc, []byte{0xFF, 0xD8}) || !bytes.HasSuffix(dc, []byte{0xFF, 0xD9}) {
			t.Fatalf("reduced stream of %d bytes from %d is not SOI..EOI within the input", len(dc), len(src))
		}
		for _, s := range scanHeaders(t, dc) {
			if s[0] != 0 {
				t.Fatalf("kept an AC scan (Ss=%d)", s[0])
			}
		}
	})
}
