/* Exercises the C API's error paths and a normal push/pull cycle; exit 0 when all checks pass.
 * argv[1]: the model (default diffsal), run with its tiny config and random weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salrt.h"

#define CHECK(cond, what)                                                                       \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "FAILED: %s (%s)\n", what, s ? salrt_last_error(s) : "");          \
            return 1;                                                                           \
        }                                                                                       \
    } while (0)

int main(int argc, char **argv) {
    salrt_session *s = NULL;
    char options[256];
    snprintf(options, sizeof options, "{\"model\": \"%s\", \"config\": \"tiny\", \"random_weights\": true, \"steps\": 1}",
             argc > 1 ? argv[1] : "diffsal");
    CHECK(salrt_create("{\"config\": \"tiny\"}", &s) == SALRT_E_PYTHON, "create without checkpoint fails");
    CHECK(strstr(salrt_last_error(NULL), "checkpoint") != NULL, "create error names the problem");
    CHECK(salrt_create(options, &s) == SALRT_OK, "create");
    float map[64 * 32];
    int64_t pts = -1;
    CHECK(salrt_pull_map(s, map, 64, 32, &pts) == SALRT_E_NO_MAP, "no map before frames");
    static unsigned char rgb[48 * 64 * 3];
    for (size_t i = 0; i < sizeof rgb; ++i) rgb[i] = (unsigned char)(i * 7);
    const unsigned char *planes[3] = {rgb, NULL, NULL};
    int strides[3] = {64 * 3, 0, 0};
    CHECK(salrt_push_frame(s, planes, strides, 63, 48, SALRT_I420, 0) == SALRT_E_ARGUMENT, "odd I420 rejected");
    CHECK(salrt_push_frame(s, planes, strides, 64, 48, (salrt_format)7, 0) == SALRT_E_ARGUMENT, "bad format");
    CHECK(salrt_push_frame(s, NULL, strides, 64, 48, SALRT_RGB24, 0) == SALRT_E_ARGUMENT, "NULL planes");
    for (int i = 0; i < 3; ++i) CHECK(salrt_push_frame(s, planes, strides, 64, 48, SALRT_RGB24, i * 40000) == SALRT_OK, "push");
    float audio[1600 * 2] = {0};
    CHECK(salrt_push_audio(s, audio, 1600, 2, 16000) == SALRT_OK, "push audio");
    CHECK(salrt_push_audio(s, audio, 1600, 2, 0) == SALRT_E_ARGUMENT, "bad audio rate");
    CHECK(salrt_pull_map(s, map, 64, 32, &pts) == SALRT_OK && pts == 80000, "pull map of the newest frame");
    for (int i = 0; i < 64 * 32; ++i) CHECK(map[i] >= 0.0f && map[i] <= 1.0f, "map values in 0..1");
    float off[4];
    int cols = 0, rows = 0;
    CHECK(salrt_pull_qp_offsets(s, 64, 48, 16, 3.0f, off, 4, &cols, &rows) == SALRT_E_CAPACITY, "capacity check");
    CHECK(cols == 4 && rows == 3, "grid size reported on capacity error");
    float off12[12];
    CHECK(salrt_pull_qp_offsets(s, 64, 48, 16, 3.0f, off12, 12, &cols, &rows) == SALRT_OK, "qp offsets");
    salrt_destroy(s);
    salrt_destroy(NULL);
    printf("ok\n");
    return 0;
}
