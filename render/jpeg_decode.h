#ifndef RF_JPEG_DECODE_H
#define RF_JPEG_DECODE_H

#include <stddef.h>
#include <vips/vips.h>

/* Results of rf_jpeg_decode. */
enum {
	RF_JPEG_OK = 0,
	RF_JPEG_CORRUPT = 1,     /* libjpeg refused the data; see msg */
	RF_JPEG_UNSUPPORTED = 2, /* a colour space the caller leaves to libvips */
	RF_JPEG_NO_MEMORY = 3,
};

/* Longest message rf_jpeg_decode writes into msg. */
#define RF_JPEG_MSG_MAX 200

/* Most components a JPEG may have. */
#define RF_JPEG_MAX_COMPONENTS 4

int rf_jpeg_full_idct(const unsigned char *data, size_t len, int scale_num,
	unsigned char ids[RF_JPEG_MAX_COMPONENTS]);

int rf_jpeg_decode(const unsigned char *data, size_t len, int scale_num,
	int max_scans, VipsImage *header, VipsImage **out, char *msg);

#endif
