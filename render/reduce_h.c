/* The horizontal half of the Lanczos resample, for 8-bit images.
 *
 * libvips 8.14's reduceh is scalar C with a generic inner loop (its vertical
 * twin, reducev, has an Orc vector path); on the gallery's 1920 px sources
 * it was a third of a render's CPU. This pass does the same filter with the
 * taps laid out per output pixel, so the compiler keeps one accumulator per
 * band in registers and the loop has no per-pixel geometry. The weights come
 * from Go (reduce_h.go); edge taps are already folded onto the edge pixel,
 * as libvips' copy-extend does. */

#include <string.h>

#include "reduce_h.h"

/* rf_hreduce_begin makes in's pixels readable through reg, a region over
 * all of in, and prepares out, a memory image of out_w x in's height with
 * in's fields and metadata. A region over a copy of an image in memory
 * points into that memory, so the decoded source is not copied again. */
int rf_hreduce_begin(VipsImage *in, int out_w, VipsRegion **reg, VipsImage **out) {
	VipsRect all = { 0, 0, in->Xsize, in->Ysize };
	VipsRegion *r;
	VipsImage *o;

	if (!(r = vips_region_new(in)))
		return -1;
	if (vips_region_prepare(r, &all)) {
		g_object_unref(r);
		return -1;
	}
	o = vips_image_new_memory();
	if (vips_image_pipelinev(o, VIPS_DEMAND_STYLE_ANY, in, NULL)) {
		g_object_unref(o);
		g_object_unref(r);
		return -1;
	}
	o->Xsize = out_w;
	if (vips_image_write_prepare(o)) {
		g_object_unref(o);
		g_object_unref(r);
		return -1;
	}
	*reg = r;
	*out = o;
	return 0;
}

static inline uint8_t clamp8(int32_t v) {
	v >>= RF_HSHIFT;
	return v < 0 ? 0 : v > 255 ? 255 : (uint8_t) v;
}

/* ROW_N is one row for a fixed band count B, so every band's sum stays in a
 * register. */
#define ROW_N(B) \
	static void row_##B(const uint8_t *restrict in, uint8_t *restrict out, int x0, int out_w, \
		const int32_t *restrict start, const int16_t *restrict weights, int taps) { \
		for (int x = x0; x < out_w; x++) { \
			const uint8_t *p = in + (size_t) start[x] * B; \
			const int16_t *w = weights + (size_t) x * taps; \
			int32_t s[B]; \
			for (int b = 0; b < B; b++) \
				s[b] = 1 << (RF_HSHIFT - 1); \
			for (int t = 0; t < taps; t++) \
				for (int b = 0; b < B; b++) \
					s[b] += w[t] * p[t * B + b]; \
			for (int b = 0; b < B; b++) \
				out[x * B + b] = clamp8(s[b]); \
		} \
	}
ROW_N(1)
ROW_N(2)
ROW_N(3)
ROW_N(4)

static void row_any(const uint8_t *restrict in, uint8_t *restrict out, int x0, int out_w, int bands,
	const int32_t *restrict start, const int16_t *restrict weights, int taps) {
	for (int x = x0; x < out_w; x++) {
		const uint8_t *p = in + (size_t) start[x] * bands;
		const int16_t *w = weights + (size_t) x * taps;
		for (int b = 0; b < bands; b++) {
			int32_t s = 1 << (RF_HSHIFT - 1);
			for (int t = 0; t < taps; t++)
				s += w[t] * p[t * bands + b];
			out[x * bands + b] = clamp8(s);
		}
	}
}

#if defined(__x86_64__)
#include <tmmintrin.h>

/* row_ssse3 is row_3 or row_4 with SSSE3: a shuffle spreads two taps of
 * every band into 16-bit lanes as (tap t, tap t+1) pairs, and one
 * multiply-add applies both taps' weights to all bands at once. taps must be
 * even, and every pixel below safe_w must have 16 readable bytes past its
 * last pair; the rest of the row goes through the scalar loop. */
__attribute__((target("ssse3")))
static int row_ssse3(const uint8_t *restrict in, uint8_t *restrict out, int safe_w, int bands,
	const int32_t *restrict start, const int16_t *restrict weights, int taps) {
	/* Pixel bytes to (t, t+1) pairs per band; -1 is a zero lane. */
	const __m128i lo3 = _mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
	const __m128i hi3 = _mm_setr_epi8(6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
	const __m128i lo4 = _mm_setr_epi8(0, -1, 4, -1, 1, -1, 5, -1, 2, -1, 6, -1, 3, -1, 7, -1);
	const __m128i hi4 = _mm_setr_epi8(8, -1, 12, -1, 9, -1, 13, -1, 10, -1, 14, -1, 11, -1, 15, -1);
	const __m128i lo = bands == 3 ? lo3 : lo4, hi = bands == 3 ? hi3 : hi4;
	const __m128i round = _mm_set1_epi32(1 << (RF_HSHIFT - 1));
	int x;

	for (x = 0; x < safe_w; x++) {
		const uint8_t *p = in + (size_t) start[x] * bands;
		const int16_t *w = weights + (size_t) x * taps;
		__m128i acc = round;
		int t = 0;
		for (; t + 4 <= taps; t += 4) {
			__m128i px = _mm_loadu_si128((const __m128i *) (p + t * bands));
			int32_t w01, w23;
			memcpy(&w01, w + t, 4);
			memcpy(&w23, w + t + 2, 4);
			acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_shuffle_epi8(px, lo), _mm_set1_epi32(w01)));
			acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_shuffle_epi8(px, hi), _mm_set1_epi32(w23)));
		}
		if (t < taps) {
			__m128i px = _mm_loadu_si128((const __m128i *) (p + t * bands));
			int32_t w01;
			memcpy(&w01, w + t, 4);
			acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_shuffle_epi8(px, lo), _mm_set1_epi32(w01)));
		}
		acc = _mm_srai_epi32(acc, RF_HSHIFT);
		acc = _mm_packus_epi16(_mm_packs_epi32(acc, acc), acc);
		uint32_t v = (uint32_t) _mm_cvtsi128_si32(acc);
		memcpy(out + (size_t) x * bands, &v, bands);
	}
	return x;
}

#endif

/* rf_hreduce_rows filters rows [y0, y1) of reg into out, with the vector
 * loop where the CPU has it unless vector is 0 (tests hold the two loops to
 * the same results). Rows are independent, so callers may run disjoint
 * ranges at once. */
void rf_hreduce_rows(VipsRegion *reg, VipsImage *out, int y0, int y1,
	const int32_t *start, const int16_t *weights, int taps, int vector) {
	int bands = out->Bands, out_w = out->Xsize;
	size_t row_bytes = (size_t) reg->valid.width * bands;
	int simd = 0, safe_w = 0;

#if defined(__x86_64__)
	simd = vector && (bands == 3 || bands == 4) && taps % 2 == 0 && __builtin_cpu_supports("ssse3");
#endif
	/* The vector loop reads 16 bytes from its last pair of taps; pixels
	 * whose window ends too near the row's end take the scalar loop, so no
	 * read leaves the row. */
	if (simd)
		while (safe_w < out_w &&
			((size_t) start[safe_w] + taps - 2) * bands + 16 <= row_bytes)
			safe_w++;

	for (int y = y0; y < y1; y++) {
		const uint8_t *in = VIPS_REGION_ADDR(reg, 0, y);
		uint8_t *o = VIPS_IMAGE_ADDR(out, 0, y);
		int x = 0;
#if defined(__x86_64__)
		if (simd)
			x = row_ssse3(in, o, safe_w, bands, start, weights, taps);
#endif
		switch (bands) {
		case 1: row_1(in, o, x, out_w, start, weights, taps); break;
		case 2: row_2(in, o, x, out_w, start, weights, taps); break;
		case 3: row_3(in, o, x, out_w, start, weights, taps); break;
		case 4: row_4(in, o, x, out_w, start, weights, taps); break;
		default: row_any(in, o, x, out_w, bands, start, weights, taps); break;
		}
	}
}
