#ifndef ISFGAN_JPEG_SHIM_H
#define ISFGAN_JPEG_SHIM_H
#include <stddef.h>

// libjpeg reports fatal errors by longjmp, which Swift frames cannot survive. These two
// functions own the setjmp; on failure they return non-zero and copy libjpeg's message.

// Decodes a JPEG held in memory to 8-bit RGB (or gray when the file is gray).
// On success *pixels is malloc'ed (caller frees) with height*width*channels bytes.
int isf_jpeg_decode(const unsigned char *data, size_t size, unsigned char **pixels,
                    int *width, int *height, int *channels, char *message, size_t message_size);

// Encodes 8-bit RGB or gray pixels to a JPEG in memory (*out malloc'ed, caller frees).
int isf_jpeg_encode(const unsigned char *pixels, int width, int height, int channels,
                    int quality, unsigned char **out, size_t *out_size,
                    char *message, size_t message_size);

#endif
