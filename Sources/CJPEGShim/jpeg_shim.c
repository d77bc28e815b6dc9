// libjpeg signals fatal errors through error_exit, which must not return. These wrappers
// own the setjmp that error_exit longjmps to, so no Swift frame is ever jumped over.
#include "jpeg_shim.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char *message;
    size_t message_size;
    // The encoder's output buffer; it lives here (in memory whose address libjpeg holds)
    // so that it is still known after a longjmp and can be freed.
    unsigned char *memory;
} shim_error;

static void shim_error_exit(j_common_ptr info) {
    shim_error *err = (shim_error *)info->err;
    if (err->message && err->message_size > 0) {
        char text[JMSG_LENGTH_MAX];
        err->base.format_message(info, text);
        snprintf(err->message, err->message_size, "%s", text);
    }
    longjmp(err->jump, 1);
}

// Warnings (a corrupt but decodable stream) are collected as the message but not fatal,
// except that a stream which ends early is reported: libjpeg pads it with grey otherwise.
static void shim_output_message(j_common_ptr info) { (void)info; }

static void set_message(char *message, size_t size, const char *text) {
    if (message && size > 0) snprintf(message, size, "%s", text);
}

int isf_jpeg_decode(const unsigned char *data, size_t size, unsigned char **pixels,
                    int *width, int *height, int *channels, char *message,
                    size_t message_size) {
    struct jpeg_decompress_struct cinfo;
    shim_error err;
    unsigned char *volatile out = NULL;
    *pixels = NULL;
    if (size == 0 || size > (size_t)0x7fffffff) {
        set_message(message, message_size, size == 0 ? "empty JPEG data" : "JPEG too large");
        return 1;
    }
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = shim_error_exit;
    err.base.output_message = shim_output_message;
    err.message = message;
    err.message_size = message_size;
    err.memory = NULL;
    if (setjmp(err.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(out);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.num_components == 1) {
        cinfo.out_color_space = JCS_GRAYSCALE;
    } else {
        cinfo.out_color_space = JCS_RGB;
    }
    // A header can claim 65,535 x 65,535 pixels in a few bytes; allow at most 4,096 output
    // pixels per input byte (plus 1 Mpx), which real JPEGs stay well under.
    {
        double pixels_claimed = (double)cinfo.image_width * (double)cinfo.image_height;
        if (pixels_claimed > 4096.0 * (double)size + 1048576.0 || pixels_claimed > 268435456.0) {
            set_message(message, message_size,
                        "JPEG header declares more pixels than the file can hold");
            jpeg_destroy_decompress(&cinfo);
            return 1;
        }
    }
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height, c = cinfo.output_components;
    // JPEG dimensions are at most 65,535 each, so this product cannot overflow size_t.
    size_t row = w * c;
    out = malloc(row * h > 0 ? row * h : 1);
    if (!out) {
        set_message(message, message_size, "out of memory decoding JPEG");
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW rows[1] = {out + row * cinfo.output_scanline};
        jpeg_read_scanlines(&cinfo, rows, 1);
    }
    // A truncated stream decodes (grey-filled) with a "premature end" warning.
    if (cinfo.err->num_warnings > 0) {
        char text[JMSG_LENGTH_MAX];
        cinfo.err->format_message((j_common_ptr)&cinfo, text);
        set_message(message, message_size, text);
        jpeg_destroy_decompress(&cinfo);
        free(out);
        return 2;
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    *pixels = out;
    *width = (int)w;
    *height = (int)h;
    *channels = (int)c;
    return 0;
}

int isf_jpeg_encode(const unsigned char *pixels, int width, int height, int channels,
                    int quality, unsigned char **out, size_t *out_size, char *message,
                    size_t message_size) {
    struct jpeg_compress_struct cinfo;
    shim_error err;
    unsigned long buffer_size = 0;
    *out = NULL;
    *out_size = 0;
    if (width <= 0 || height <= 0 || width > 65500 || height > 65500 ||
        (channels != 1 && channels != 3)) {
        set_message(message, message_size, "JPEG needs 1..65500 px sides and 1 or 3 channels");
        return 1;
    }
    cinfo.err = jpeg_std_error(&err.base);
    err.base.error_exit = shim_error_exit;
    err.base.output_message = shim_output_message;
    err.message = message;
    err.message_size = message_size;
    err.memory = NULL;
    if (setjmp(err.jump)) {
        jpeg_destroy_compress(&cinfo);
        free(err.memory);
        return 1;
    }
    jpeg_create_compress(&cinfo);
    jpeg_mem_dest(&cinfo, &err.memory, &buffer_size);
    cinfo.image_width = (JDIMENSION)width;
    cinfo.image_height = (JDIMENSION)height;
    cinfo.input_components = channels;
    cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, quality, TRUE);
    jpeg_start_compress(&cinfo, TRUE);
    size_t row = (size_t)width * (size_t)channels;
    while (cinfo.next_scanline < cinfo.image_height) {
        JSAMPROW rows[1] = {(JSAMPROW)(pixels + row * cinfo.next_scanline)};
        jpeg_write_scanlines(&cinfo, rows, 1);
    }
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    *out = err.memory;
    *out_size = buffer_size;
    return 0;
}
