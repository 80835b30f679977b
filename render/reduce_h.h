#ifndef RF_REDUCE_H_H
#define RF_REDUCE_H_H

#include <stdint.h>
#include <vips/vips.h>

/* Fixed-point weights: each output pixel's taps sum to 1 << RF_HSHIFT. */
#define RF_HSHIFT 14

int rf_hreduce_begin(VipsImage *in, int out_w, VipsRegion **reg, VipsImage **out);

void rf_hreduce_rows(VipsRegion *reg, VipsImage *out, int y0, int y1,
	const int32_t *start, const int16_t *weights, int taps, int vector);

#endif
