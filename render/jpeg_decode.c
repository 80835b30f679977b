/* rf_jpeg_decode decodes a JPEG with libjpeg-turbo straight into a libvips
 * memory image, at any of libjpeg's DCT scales M/8 (M = 1..8).
 *
 * Why not libvips' jpegload: it offers only 1/1, 1/2, 1/4 and 1/8, so a
 * 1600 px variant of a 2560 px photo needed the full decode and a Lanczos
 * resample of all 4 MP; at 5/8 libjpeg's scaled IDCT produces the 1600 px
 * image directly. And a random-access jpegload decodes through libvips'
 * thread pool into region buffers and then into memory; decoding here writes
 * each scanline once, into the image the variants are cut from.
 *
 * The guarantees jpegload with fail=TRUE gave are kept: any libjpeg warning
 * (corrupt data, a truncated file) is an error, and so is a progressive
 * JPEG with more scans than any real encoder writes. At 1/8 the caller may
 * hand a progressive JPEG over without the AC scans no output pixel reads
 * (jpeg_dc_only.go).
 */

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>

#include "jpeg_decode.h"

typedef struct {
	struct jpeg_error_mgr pub; /* first: libjpeg casts cinfo->err to this */
	struct jpeg_progress_mgr progress;
	j_decompress_ptr cinfo;
	jmp_buf jump;
	char *msg;
	int max_scans;
} rf_jpeg_err;

static void
rf_fail(rf_jpeg_err *e)
{
	longjmp(e->jump, 1);
}

static void
rf_error_exit(j_common_ptr cinfo)
{
	rf_jpeg_err *e = (rf_jpeg_err *) cinfo->err;
	char buf[JMSG_LENGTH_MAX];

	cinfo->err->format_message(cinfo, buf);
	snprintf(e->msg, RF_JPEG_MSG_MAX, "%s", buf);
	rf_fail(e);
}

/* Warnings (msg_level < 0) are what libjpeg says about corrupt or truncated
 * data before carrying on with grey; they end the decode. Trace messages
 * (msg_level >= 0) are ignored. */
static void
rf_emit_message(j_common_ptr cinfo, int msg_level)
{
	if (msg_level < 0)
		rf_error_exit(cinfo);
}

static void
rf_progress(j_common_ptr cinfo)
{
	rf_jpeg_err *e = (rf_jpeg_err *) cinfo->err;

	if (e->cinfo->input_scan_number > e->max_scans) {
		snprintf(e->msg, RF_JPEG_MSG_MAX,
			"more than %d progressive scans", e->max_scans);
		rf_fail(e);
	}
}

/* rf_err_init points cinfo's error handling at err: warnings and errors
 * end the work with msg set, by longjmp to err->jump. */
static void
rf_err_init(j_decompress_ptr cinfo, rf_jpeg_err *err, char *msg)
{
	memset(cinfo, 0, sizeof(*cinfo));
	cinfo->err = jpeg_std_error(&err->pub);
	err->pub.error_exit = rf_error_exit;
	err->pub.emit_message = rf_emit_message;
	err->cinfo = cinfo;
	err->msg = msg;
}

/* rf_jpeg_full_idct writes into ids the component ids of data's components
 * whose IDCT at scale scale_num/8 reads more than the DC coefficient, and
 * returns how many there are, or -1 if the header cannot be read. At 1/8
 * libjpeg-turbo scales a subsampled component up through a larger IDCT
 * (2x2 for 4:2:0 chroma) rather than upsampling it, so those components
 * need their AC coefficients. */
int
rf_jpeg_full_idct(const unsigned char *data, size_t len, int scale_num,
	unsigned char ids[RF_JPEG_MAX_COMPONENTS])
{
	struct jpeg_decompress_struct cinfo;
	rf_jpeg_err err;
	char msg[RF_JPEG_MSG_MAX];
	int ci, n = 0;

	rf_err_init(&cinfo, &err, msg);
	if (setjmp(err.jump)) {
		jpeg_destroy_decompress(&cinfo);
		return -1;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, data, len);
	jpeg_read_header(&cinfo, TRUE);
	if (cinfo.num_components > RF_JPEG_MAX_COMPONENTS) {
		jpeg_destroy_decompress(&cinfo);
		return -1;
	}
	cinfo.scale_num = scale_num;
	cinfo.scale_denom = 8;
	jpeg_calc_output_dimensions(&cinfo);
	for (ci = 0; ci < cinfo.num_components; ci++) {
		jpeg_component_info *c = &cinfo.comp_info[ci];

		if (c->DCT_scaled_size > 1)
			ids[n++] = (unsigned char) c->component_id;
	}
	jpeg_destroy_decompress(&cinfo);
	return n;
}

/* rf_jpeg_decode decodes data at scale scale_num/8 into a new memory image
 * carrying header's metadata (EXIF orientation, ICC profile, resolution),
 * header being the lazy libvips load of the same data. A progressive JPEG
 * with more than max_scans scans is refused. On RF_JPEG_CORRUPT, msg says
 * why. */
int
rf_jpeg_decode(const unsigned char *data, size_t len, int scale_num,
	int max_scans, VipsImage *header, VipsImage **out, char *msg)
{
	struct jpeg_decompress_struct cinfo;
	rf_jpeg_err err;
	VipsImage *volatile img = NULL;
	int bands;
	VipsInterpretation interp;

	*out = NULL;
	msg[0] = '\0';
	rf_err_init(&cinfo, &err, msg);
	err.progress.progress_monitor = rf_progress;
	err.max_scans = max_scans;
	if (setjmp(err.jump)) {
		jpeg_destroy_decompress(&cinfo);
		if (img)
			g_object_unref(img);
		return RF_JPEG_CORRUPT;
	}
	jpeg_create_decompress(&cinfo);
	cinfo.progress = &err.progress;
	jpeg_mem_src(&cinfo, data, len);
	jpeg_read_header(&cinfo, TRUE);

	switch (cinfo.jpeg_color_space) {
	case JCS_GRAYSCALE:
		cinfo.out_color_space = JCS_GRAYSCALE;
		bands = 1;
		interp = VIPS_INTERPRETATION_B_W;
		break;
	case JCS_YCbCr:
	case JCS_RGB:
		cinfo.out_color_space = JCS_RGB;
		bands = 3;
		interp = VIPS_INTERPRETATION_sRGB;
		break;
	default:
		/* CMYK and YCCK (Adobe's inverted CMYK among them) stay with
		 * libvips, which knows their conventions. */
		jpeg_destroy_decompress(&cinfo);
		return RF_JPEG_UNSUPPORTED;
	}
	cinfo.scale_num = scale_num;
	cinfo.scale_denom = 8;
	/* Block smoothing guesses a progressive image's missing low AC
	 * coefficients; at 1/8 the IDCT reads only DC, so it is wasted work
	 * there, and the AC scans may have been left out (jpeg_dc_only.go). */
	if (scale_num == 1)
		cinfo.do_block_smoothing = FALSE;
	jpeg_start_decompress(&cinfo);
	if (cinfo.output_components != bands) {
		jpeg_destroy_decompress(&cinfo);
		return RF_JPEG_UNSUPPORTED;
	}

	img = vips_image_new_memory();
	/* Copy header's fields and metadata, then set this decode's size. */
	if (vips_image_pipelinev(img, VIPS_DEMAND_STYLE_ANY, header, NULL)) {
		jpeg_destroy_decompress(&cinfo);
		g_object_unref(img);
		return RF_JPEG_NO_MEMORY;
	}
	vips_image_init_fields(img, cinfo.output_width, cinfo.output_height,
		bands, VIPS_FORMAT_UCHAR, VIPS_CODING_NONE, interp,
		vips_image_get_xres(header), vips_image_get_yres(header));
	if (vips_image_write_prepare(img)) {
		jpeg_destroy_decompress(&cinfo);
		g_object_unref(img);
		return RF_JPEG_NO_MEMORY;
	}

	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW rows[16];
		JDIMENSION n;

		for (n = 0; n < 16 && cinfo.output_scanline + n < cinfo.output_height; n++)
			rows[n] = VIPS_IMAGE_ADDR(img, 0, cinfo.output_scanline + n);
		jpeg_read_scanlines(&cinfo, rows, n);
	}
	jpeg_finish_decompress(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	*out = img;
	return RF_JPEG_OK;
}
