package render

import "testing"

func TestSniff(t *testing.T) {
	tests := []struct {
		head string
		want SourceFormat
		ok   bool
	}{
		{"\xff\xd8\xff\xe0", SourceJPEG, true},
		{"\x89PNG\r\n\x1a\n....", SourcePNG, true},
		{"RIFF\x00\x00\x00\x00WEBPVP8 ", SourceWebP, true},
		{"GIF89a", SourceGIF, true},
		{"II*\x00", SourceTIFF, true},
		{"MM\x00*", SourceTIFF, true},
		{"\x00\x00\x00\x18ftypheic", SourceHEIF, true},
		{"\x00\x00\x00\x18ftypavif", SourceAVIF, true},
		{"\x00\x00\x00\x18ftypmp42", "", false}, // a video, not an image
		{"RIFF\x00\x00\x00\x00WAVE", "", false},
		{"<svg xmlns", "", false},
		{"%PDF-1.7", "", false},
		{"BM", "", false}, // BMP: libvips would take it via magick; we don't
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := sniff([]byte(tt.head))
		if got != tt.want || ok != tt.ok {
			t.Errorf("sniff(%q) = %q %v, want %q %v", tt.head, got, ok, tt.want, tt.ok)
		}
	}
}

func TestChooseScale(t *testing.T) {
	jpeg := func(w, h, o int) Header {
		return Header{Format: SourceJPEG, Width: w, Height: h, Bands: 3, Orientation: o}
	}
	cmyk := func(w, h int) Header {
		return Header{Format: SourceJPEG, Width: w, Height: h, Bands: 4, Orientation: 1}
	}
	tests := []struct {
		name  string
		h     Header
		plans []plan
		want  int // M of M/8
	}{
		// 18 MP to 512: 5184/8 = 648 still covers 512, where vips_thumbnail
		// would stop at 2/8 to keep a 2x margin.
		{"18MP to 512", jpeg(5184, 3456, 1), []plan{{resizeW: 512, resizeH: 341}}, 1},
		{"exactly 1/8", jpeg(4096, 2048, 1), []plan{{resizeW: 512, resizeH: 256}}, 1},
		{"a pixel over 1/8", jpeg(4096, 2048, 1), []plan{{resizeW: 513, resizeH: 257}}, 2},
		{"1600 from 2560 is exactly 5/8", jpeg(2560, 1600, 1), []plan{{resizeW: 1600, resizeH: 1000}}, 5},
		{"3/8 where it is exact", jpeg(1920, 1080, 1), []plan{{resizeW: 720, resizeH: 405}, {resizeW: 200, resizeH: 113}}, 3},
		{"not 3/8 where it misses: 1/2", jpeg(1920, 1080, 1), []plan{{resizeW: 700, resizeH: 394}}, 4},
		{"exact for one variant, covering the other", jpeg(1920, 1080, 1), []plan{{resizeW: 720, resizeH: 300}, {resizeW: 720, resizeH: 405}}, 3},
		{"exact for one, a larger one left uncovered: 1/2", jpeg(1920, 1080, 1), []plan{{resizeW: 800, resizeH: 450}, {resizeW: 720, resizeH: 405}}, 4},
		{"largest variant decides", jpeg(5184, 3456, 1), []plan{{resizeW: 64, resizeH: 43}, {resizeW: 1600, resizeH: 1067}}, 4},
		{"odd sizes round up", jpeg(1001, 1001, 1), []plan{{resizeW: 126, resizeH: 126}}, 1},
		{"a pixel past the rounded-up size", jpeg(1001, 1001, 1), []plan{{resizeW: 127, resizeH: 127}}, 2},
		{"rotated source checks stored axes", jpeg(4000, 1000, 6), []plan{{resizeW: 200, resizeH: 600}}, 2},
		{"upscale", jpeg(100, 100, 1), []plan{{resizeW: 200, resizeH: 200}}, 8},
		{"CMYK: libvips' 1/2, not 3/8", cmyk(1920, 1080), []plan{{resizeW: 720, resizeH: 405}}, 4},
		{"CMYK: 1/1, not 5/8", cmyk(2560, 1600), []plan{{resizeW: 1600, resizeH: 1000}}, 8},
		{"not jpeg", Header{Format: SourcePNG, Width: 5000, Height: 5000}, []plan{{resizeW: 10, resizeH: 10}}, 8},
	}
	for _, tt := range tests {
		if got := chooseScale(tt.h, tt.plans, ShrinkFine); got != tt.want {
			t.Errorf("%s: scale %d/8, want %d/8", tt.name, got, tt.want)
		}
	}
	exact := []plan{{resizeW: 1600, resizeH: 1000}}
	for mode, want := range map[ShrinkMode]int{ShrinkFine: 5, ShrinkCoarse: 8, ShrinkOff: 8} {
		if got := chooseScale(jpeg(2560, 1600, 1), exact, mode); got != want {
			t.Errorf("%s: 2560 to 1600 at %d/8, want %d/8", mode, got, want)
		}
	}
	if got := chooseScale(jpeg(5184, 3456, 1), []plan{{resizeW: 512, resizeH: 341}}, ShrinkOff); got != 8 {
		t.Errorf("off: 18 MP to 512 at %d/8, want 8/8", got)
	}
}

func TestPowerOfTwoShrink(t *testing.T) {
	for m, want := range map[int]int{1: 8, 2: 4, 3: 2, 4: 2, 5: 1, 7: 1, 8: 1} {
		if got := powerOfTwoShrink(m); got != want {
			t.Errorf("scale %d/8: shrink %d, want %d", m, got, want)
		}
	}
}

func TestPlaceWatermark(t *testing.T) {
	for pos, want := range map[Position][2]int{
		"north-west": {5, 5}, "north": {40, 5}, "north-east": {75, 5},
		"west": {5, 45}, "centre": {40, 45}, "east": {75, 45},
		"south-west": {5, 85}, "south": {40, 85}, "south-east": {75, 85}, "": {75, 85},
	} {
		if x, y := place(pos, 100, 100, 20, 10, 5); x != want[0] || y != want[1] {
			t.Errorf("%q: (%d,%d), want %v", pos, x, y, want)
		}
	}
}

func TestStripWebPChunks(t *testing.T) {
	chunk := func(id, data string) string {
		n := len(data)
		s := id + string([]byte{byte(n), byte(n >> 8), 0, 0}) + data
		if n%2 == 1 {
			s += "\x00"
		}
		return s
	}
	body := "WEBP" + chunk("VP8X", "\x0c\x00\x00\x00\x00\x00\x00\x00\x00\x00") + chunk("VP8 ", "abc") + chunk("EXIF", "exif!") + chunk("XMP ", "<x/>")
	file := "RIFF" + string([]byte{byte(len(body)), 0, 0, 0}) + body
	got := string(stripWebPChunks([]byte(file)))
	wantBody := "WEBP" + chunk("VP8X", "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00") + chunk("VP8 ", "abc")
	if want := "RIFF" + string([]byte{byte(len(wantBody)), 0, 0, 0}) + wantBody; got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"", "RIFF", file[:len(file)-3], "RIFF\x00\x00\x00\x00WEBPVP8 \xff\xff\xff\x7f"} {
		if got := stripWebPChunks([]byte(bad)); string(got) != bad {
			t.Errorf("malformed %q was changed to %q", bad, got)
		}
	}
}
