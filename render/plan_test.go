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

func TestChooseShrink(t *testing.T) {
	jpeg := func(w, h, o int) Header { return Header{Format: SourceJPEG, Width: w, Height: h, Orientation: o} }
	tests := []struct {
		name  string
		h     Header
		plans []plan
		want  int
	}{
		// 18 MP to 512: 5184/8 = 648 still covers 512, where vips_thumbnail
		// would stop at 4 to keep a 2x margin.
		{"18MP to 512", jpeg(5184, 3456, 1), []plan{{resizeW: 512, resizeH: 341}}, 8},
		{"exactly 8x", jpeg(4096, 2048, 1), []plan{{resizeW: 512, resizeH: 256}}, 8},
		{"a pixel over 8x", jpeg(4096, 2048, 1), []plan{{resizeW: 513, resizeH: 257}}, 4},
		{"largest variant decides", jpeg(5184, 3456, 1), []plan{{resizeW: 64, resizeH: 43}, {resizeW: 1600, resizeH: 1067}}, 2},
		{"odd sizes round up", jpeg(1001, 1001, 1), []plan{{resizeW: 126, resizeH: 126}}, 8},
		{"a pixel past the rounded-up size", jpeg(1001, 1001, 1), []plan{{resizeW: 127, resizeH: 127}}, 4},
		{"rotated source checks stored axes", jpeg(4000, 1000, 6), []plan{{resizeW: 200, resizeH: 600}}, 4},
		{"upscale", jpeg(100, 100, 1), []plan{{resizeW: 200, resizeH: 200}}, 1},
		{"not jpeg", Header{Format: SourcePNG, Width: 5000, Height: 5000}, []plan{{resizeW: 10, resizeH: 10}}, 1},
	}
	for _, tt := range tests {
		if got := chooseShrink(tt.h, tt.plans); got != tt.want {
			t.Errorf("%s: shrink %d, want %d", tt.name, got, tt.want)
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
