/* Example: encode raw I420 video with libx264, more bits where salrt predicts people look.
 *
 *   roi_x264 INPUT.yuv|- WIDTH HEIGHT FPS OUTPUT.264 [OPTIONS_JSON] [STRENGTH] [OFFSETS_DUMP]
 *
 * For each frame: push it to libsalrt_embed, pull the QP offset of every 16x16 macroblock and
 * hand them to x264 as quant_offsets. OFFSETS_DUMP (optional) receives the float32 offsets of
 * every frame, for checking. A salrt failure stops the encode with its message; the output
 * written so far stays a valid Annex-B stream.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x264.h>

#include "salrt.h"

static int write_nals(FILE *f, x264_nal_t *nal, int n) {
    for (int i = 0; i < n; ++i)
        if (fwrite(nal[i].p_payload, 1, nal[i].i_payload, f) != (size_t)nal[i].i_payload) return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s INPUT.yuv|- WIDTH HEIGHT FPS OUTPUT.264 [OPTIONS_JSON] [STRENGTH] [OFFSETS_DUMP]\n",
                argv[0]);
        return 2;
    }
    const int w = atoi(argv[2]), h = atoi(argv[3]);
    const double fps = atof(argv[4]);
    const char *opts = argc > 6 ? argv[6] : "{\"config\": \"tiny\", \"random_weights\": true}";
    const float strength = argc > 7 ? (float)atof(argv[7]) : 3.0f;
    if (w <= 0 || h <= 0 || (w & 1) || (h & 1) || fps <= 0) {
        fprintf(stderr, "roi_x264: width/height must be positive and even, fps positive\n");
        return 2;
    }
    FILE *in = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "rb");
    FILE *out = fopen(argv[5], "wb");
    FILE *dump = argc > 8 ? fopen(argv[8], "wb") : NULL;
    if (!in || !out || (argc > 8 && !dump)) {
        fprintf(stderr, "roi_x264: cannot open input or output\n");
        return 2;
    }
    salrt_session *s = NULL;
    if (salrt_create(opts, &s) != SALRT_OK) {
        fprintf(stderr, "roi_x264: salrt: %s\n", salrt_last_error(NULL));
        return 1;
    }

    x264_param_t p;
    x264_param_default_preset(&p, "veryfast", NULL);
    p.i_width = w;
    p.i_height = h;
    p.i_csp = X264_CSP_I420;
    p.i_fps_num = (uint32_t)(fps * 1000 + 0.5);
    p.i_fps_den = 1000;
    p.rc.i_rc_method = X264_RC_CRF;
    p.rc.f_rf_constant = 28;
    p.rc.i_aq_mode = X264_AQ_VARIANCE; /* quant_offsets need adaptive quantisation */
    p.b_annexb = 1;
    p.i_log_level = X264_LOG_ERROR;
    x264_param_apply_profile(&p, "high");
    x264_t *enc = x264_encoder_open(&p);
    if (!enc) {
        fprintf(stderr, "roi_x264: x264_encoder_open failed\n");
        return 1;
    }
    const int mbw = (w + 15) / 16, mbh = (h + 15) / 16;
    const size_t ysize = (size_t)w * h, csize = ysize / 4;
    uint8_t *frame = malloc(ysize + 2 * csize);
    x264_picture_t pic, pic_out;
    x264_picture_alloc(&pic, X264_CSP_I420, w, h);
    x264_nal_t *nal;
    int n_nal, rc = 0;
    int64_t i = 0;
    while (fread(frame, 1, ysize + 2 * csize, in) == ysize + 2 * csize) {
        const uint8_t *planes[3] = {frame, frame + ysize, frame + ysize + csize};
        const int strides[3] = {w, w / 2, w / 2};
        if (salrt_push_frame(s, planes, strides, w, h, SALRT_I420, (int64_t)(i * 1e6 / fps)) != SALRT_OK) {
            fprintf(stderr, "roi_x264: salrt: %s\n", salrt_last_error(s));
            rc = 1;
            break;
        }
        float *offsets = malloc(sizeof(float) * mbw * mbh); /* freed by x264 via quant_offsets_free */
        int cols = 0, rows = 0;
        int r = salrt_pull_qp_offsets(s, w, h, 16, strength, offsets, mbw * mbh, &cols, &rows);
        if (r != SALRT_OK || cols != mbw || rows != mbh) {
            fprintf(stderr, "roi_x264: salrt: %s\n", r != SALRT_OK ? salrt_last_error(s) : "unexpected grid size");
            free(offsets);
            rc = 1;
            break;
        }
        if (dump) fwrite(offsets, sizeof(float), (size_t)mbw * mbh, dump);
        memcpy(pic.img.plane[0], planes[0], ysize);
        memcpy(pic.img.plane[1], planes[1], csize);
        memcpy(pic.img.plane[2], planes[2], csize);
        pic.i_pts = i++;
        pic.prop.quant_offsets = offsets;
        pic.prop.quant_offsets_free = free;
        if (x264_encoder_encode(enc, &nal, &n_nal, &pic, &pic_out) < 0 || write_nals(out, nal, n_nal) < 0) {
            fprintf(stderr, "roi_x264: encoding failed at frame %lld\n", (long long)i);
            rc = 1;
            break;
        }
    }
    pic.prop.quant_offsets = NULL;
    while (x264_encoder_delayed_frames(enc)) { /* flush: the output stays playable after an error too */
        if (x264_encoder_encode(enc, &nal, &n_nal, NULL, &pic_out) < 0) break;
        write_nals(out, nal, n_nal);
    }
    x264_encoder_close(enc);
    x264_picture_clean(&pic);
    salrt_destroy(s);
    free(frame);
    fclose(out);
    if (dump) fclose(dump);
    if (in != stdin) fclose(in);
    fprintf(stderr, "roi_x264: %lld frames\n", (long long)i);
    return rc;
}
