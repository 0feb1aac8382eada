/* salrt embedding API: saliency maps and QP offsets for video encoders, from C.
 *
 * The library embeds CPython (started once per process, the GIL released between calls) and
 * runs the salrt Python package; the Python environment that has salrt installed must be the
 * one libsalrt_embed was built against (or be reachable through PYTHONPATH/PYTHONHOME).
 * Every function returns SALRT_OK or a negative code; salrt_last_error() gives the message.
 * Functions are thread-safe per session only when calls on one session are serialised.
 */
#ifndef SALRT_H
#define SALRT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SALRT_OK 0
#define SALRT_E_ARGUMENT (-1) /* a NULL pointer, bad size or unknown format */
#define SALRT_E_PYTHON (-2)   /* salrt raised an error (message in salrt_last_error) */
#define SALRT_E_NO_MAP (-3)   /* no map yet: push frames first */
#define SALRT_E_INIT (-4)     /* the Python runtime or the salrt package could not start */
#define SALRT_E_CAPACITY (-5) /* the output buffer is too small (required size returned) */

typedef enum { SALRT_I420 = 0, SALRT_RGB24 = 1 } salrt_format;

typedef struct salrt_session salrt_session;

/* options_json: any field of salrt's RunSpec ({"model": "diffsal", "config": "paper"|"tiny",
 *   "checkpoint": "path", "random_weights": false, "device": "cpu"|"cuda", "steps": 4,
 *   "backend": "auto"|"torch"|"openvino"|..., "export_dir": "path", "precision": "fp32", ...})
 *   plus "stride": 1 and "fps": 25.0 (all optional; without a checkpoint random_weights must be
 *   true). backend "auto" on a CPU exports the model once into salrt's cache on first use. */
int salrt_create(const char *options_json, salrt_session **out);

/* One frame. I420: planes[0..2] = Y, U, V with strides[0..2]; RGB24: planes[0], strides[0].
 * pts_us: presentation time in microseconds (increasing). */
int salrt_push_frame(salrt_session *s, const uint8_t *const planes[3], const int strides[3], int width,
                     int height, salrt_format format, int64_t pts_us);

/* Audio samples (float, interleaved, any rate/channel count), contiguous from the first frame. */
int salrt_push_audio(salrt_session *s, const float *samples, int frames, int channels, int sample_rate);

/* The newest saliency map, resized to out_w x out_h, values 0..1; *pts_us = its frame's time. */
int salrt_pull_map(salrt_session *s, float *out, int out_w, int out_h, int64_t *pts_us);

/* QP offsets of the newest map for a frame of frame_w x frame_h in blocks of `block` pixels
 * (16: H.264 macroblocks), row-major; negative = finer. strength scales the mapping (3.0 default).
 * capacity is the number of floats in `out`; *cols and *rows receive the grid size. */
int salrt_pull_qp_offsets(salrt_session *s, int frame_w, int frame_h, int block, float strength, float *out,
                          int capacity, int *cols, int *rows);

/* The message of the last error on this session (or of the last failed salrt_create with s == NULL). */
const char *salrt_last_error(const salrt_session *s);

void salrt_destroy(salrt_session *s);

#ifdef __cplusplus
}
#endif
#endif /* SALRT_H */
