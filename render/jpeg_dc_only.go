package render

import "bytes"

// jpegDCOnly returns a copy of a progressive (SOF2) JPEG without the AC
// scans a decode at DCT scale 1/8 never reads, or nil when src should be
// decoded as it is. fullIDCT lists the components whose IDCT at 1/8 is
// more than their DC coefficient (rf_jpeg_full_idct: libjpeg-turbo scales
// 4:2:0 chroma up with a 2x2 IDCT); their AC scans are kept. It is asked
// only once the frame header shows a progressive file, so a baseline JPEG
// costs no second header parse; ok false leaves src whole.
//
// Why: at 1/8 libjpeg's IDCT of a full-resolution component is one value
// per 8x8 block, the block's DC coefficient, so the luma AC scans, which
// hold most of a progressive file's data and cost most of its Huffman
// decoding, cannot change a single output pixel. Dropping them makes a
// 64-512 px variant of a large progressive photo several times cheaper
// than libjpeg's own 1/8 decode, with identical pixels. The scans kept are
// kept whole, so libjpeg still checks every bit of what it decodes.
//
// What is given up: the dropped scans are walked marker by marker, not
// Huffman-decoded, so bit damage inside one that libjpeg would have
// reported is not seen at this scale. A truncated file still fails (src is
// returned to libjpeg whole, which reports it), as does a file with more
// than maxScans scans, and anything this walk does not understand falls
// back to the whole file too.
func jpegDCOnly(src []byte, maxScans int, fullIDCT func() ([]byte, bool)) []byte {
	if len(src) < 4 || src[0] != 0xFF || src[1] != 0xD8 {
		return nil
	}
	out := make([]byte, 0, len(src)/8)
	out = append(out, 0xFF, 0xD8)
	var comps, full []byte // the frame's component ids; those read whole at 1/8
	progressive, scans, dropped := false, 0, 0
	i := 2
	for {
		// Fill bytes (0xFF runs) may pad any marker.
		for i+1 < len(src) && src[i] == 0xFF && src[i+1] == 0xFF {
			i++
		}
		if i+1 >= len(src) || src[i] != 0xFF {
			return nil
		}
		marker := src[i+1]
		switch {
		case marker == 0xD9: // EOI
			if !progressive || dropped == 0 {
				return nil
			}
			return append(out, 0xFF, 0xD9)
		case marker == 0x01 || marker >= 0xD0 && marker <= 0xD7: // no length
			out = append(out, src[i:i+2]...)
			i += 2
			continue
		}
		if i+4 > len(src) {
			return nil
		}
		n := int(src[i+2])<<8 | int(src[i+3])
		end := i + 2 + n
		if n < 2 || end > len(src) {
			return nil
		}
		seg := src[i:end]
		switch marker {
		case 0xC2: // progressive, Huffman
			if progressive || len(seg) < 10 || len(seg) != 10+3*int(seg[9]) {
				return nil
			}
			progressive = true
			for k := 10; k < len(seg); k += 3 {
				comps = append(comps, seg[k])
			}
			var ok bool
			if full, ok = fullIDCT(); !ok {
				return nil
			}
		case 0xC0, 0xC1, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF:
			return nil // baseline, sequential, lossless, hierarchical or arithmetic
		case 0xDA: // SOS
			if !progressive {
				return nil
			}
			scans++
			if scans > maxScans {
				return nil
			}
			dc, comp, ok := progressiveScan(seg)
			if !ok || !dc && bytes.IndexByte(comps, comp) < 0 {
				return nil
			}
			data := scanEnd(src, end)
			if data < 0 {
				return nil // truncated: libjpeg reports it on the whole file
			}
			if dc || bytes.IndexByte(full, comp) >= 0 {
				out = append(out, src[i:data]...)
			} else {
				dropped++
			}
			i = data
			continue
		}
		out = append(out, seg...)
		i = end
	}
}

// progressiveScan reads an SOS segment of a progressive JPEG: whether it
// is a DC scan (spectral selection starting at 0) and, if not, the one
// component it holds. ok is false for a header libjpeg would refuse, so
// that the caller lets it.
func progressiveScan(seg []byte) (dc bool, comp byte, ok bool) {
	if len(seg) < 5 {
		return false, 0, false
	}
	ns := int(seg[4])
	if ns < 1 || ns > 4 || len(seg) != 2+6+2*ns {
		return false, 0, false
	}
	p := 5 + 2*ns
	ss, se, ah, al := seg[p], seg[p+1], seg[p+2]>>4, seg[p+2]&15
	if ss > se || se > 63 || ah > 13 || al > 13 {
		return false, 0, false
	}
	if ss == 0 {
		return se == 0, 0, se == 0
	}
	return false, seg[5], ns == 1 // an AC scan holds one component
}

// scanEnd returns the index of the marker that ends the entropy-coded data
// starting at i, or -1 if the data runs to the end of src. Inside the data
// 0xFF is followed by 0x00 (a stuffed byte), a restart marker, or more 0xFF
// fill; anything else is a marker.
func scanEnd(src []byte, i int) int {
	for {
		k := bytes.IndexByte(src[i:], 0xFF)
		if k < 0 || i+k+1 >= len(src) {
			return -1
		}
		i += k
		switch m := src[i+1]; {
		case m == 0x00 || m >= 0xD0 && m <= 0xD7:
			i += 2
		case m == 0xFF:
			i++
		default:
			return i
		}
	}
}
