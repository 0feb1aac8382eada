/* libsalrt_embed: the C API of include/salrt.h over an embedded CPython running salrt.app.embed. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "salrt.h"

struct salrt_session {
    PyObject *obj; /* salrt.app.embed.Session */
    char err[1024];
};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_init_ok = 0;
static char g_create_err[1024] = "";

static void start_python(void) {
    if (!Py_IsInitialized()) {
        Py_InitializeEx(0); /* no signal handlers: the host owns them */
        if (!Py_IsInitialized()) return;
        PyEval_SaveThread(); /* release the GIL for the host; calls take it back */
    }
    g_init_ok = 1;
}

/* Store the pending Python exception as one line in buf (clears it). */
static void take_error(char *buf, size_t n) {
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    const char *name = type ? ((PyTypeObject *)type)->tp_name : "error";
    PyObject *s = value ? PyObject_Str(value) : NULL;
    const char *msg = s ? PyUnicode_AsUTF8(s) : NULL;
    snprintf(buf, n, "%s: %s", name, msg ? msg : "(no message)");
    for (char *p = buf; *p; ++p)
        if (*p == '\n') *p = ' ';
    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}

int salrt_create(const char *options_json, salrt_session **out) {
    if (!out) return SALRT_E_ARGUMENT;
    *out = NULL;
    pthread_once(&g_once, start_python);
    if (!g_init_ok) {
        snprintf(g_create_err, sizeof g_create_err, "could not start the Python runtime");
        return SALRT_E_INIT;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    int rc = SALRT_OK;
    PyObject *mod = PyImport_ImportModule("salrt.app.embed");
    PyObject *obj = NULL;
    if (!mod) {
        take_error(g_create_err, sizeof g_create_err);
        rc = SALRT_E_INIT;
    } else {
        obj = PyObject_CallMethod(mod, "from_json", "s", options_json ? options_json : "{}");
        if (!obj) {
            take_error(g_create_err, sizeof g_create_err);
            rc = SALRT_E_PYTHON;
        }
    }
    Py_XDECREF(mod);
    if (rc == SALRT_OK) {
        salrt_session *s = calloc(1, sizeof *s);
        if (!s) {
            Py_DECREF(obj);
            rc = SALRT_E_ARGUMENT;
        } else {
            s->obj = obj;
            *out = s;
        }
    }
    PyGILState_Release(g);
    return rc;
}

static int fail(salrt_session *s, int code, const char *msg) {
    snprintf(s->err, sizeof s->err, "%s", msg);
    return code;
}

/* The result of a Session method that returns None: SALRT_OK, or its exception as the message.
 * Call with the GIL held; consumes r. */
static int call_status(salrt_session *s, PyObject *r) {
    int rc = SALRT_OK;
    if (!r) {
        take_error(s->err, sizeof s->err);
        rc = SALRT_E_PYTHON;
    }
    Py_XDECREF(r);
    return rc;
}

int salrt_push_frame(salrt_session *s, const uint8_t *const planes[3], const int strides[3], int width,
                     int height, salrt_format format, int64_t pts_us) {
    if (!s) return SALRT_E_ARGUMENT;
    if (!planes || !strides || !planes[0] || width <= 0 || height <= 0)
        return fail(s, SALRT_E_ARGUMENT, "push_frame: NULL plane or non-positive size");
    size_t size;
    if (format == SALRT_I420) {
        if (!planes[1] || !planes[2] || (width & 1) || (height & 1))
            return fail(s, SALRT_E_ARGUMENT, "push_frame: I420 needs three planes and even width/height");
        size = (size_t)width * height * 3 / 2;
    } else if (format == SALRT_RGB24) {
        size = (size_t)width * height * 3;
    } else {
        return fail(s, SALRT_E_ARGUMENT, "push_frame: unknown pixel format");
    }
    uint8_t *buf = malloc(size);
    if (!buf) return fail(s, SALRT_E_ARGUMENT, "push_frame: out of memory");
    uint8_t *p = buf;
    if (format == SALRT_I420) {
        for (int y = 0; y < height; ++y, p += width) memcpy(p, planes[0] + (size_t)y * strides[0], width);
        for (int c = 1; c < 3; ++c)
            for (int y = 0; y < height / 2; ++y, p += width / 2)
                memcpy(p, planes[c] + (size_t)y * strides[c], width / 2);
    } else {
        for (int y = 0; y < height; ++y, p += (size_t)width * 3)
            memcpy(p, planes[0] + (size_t)y * strides[0], (size_t)width * 3);
    }
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(s->obj, "push_frame", "y#iisL", (const char *)buf, (Py_ssize_t)size, width,
                                      height, format == SALRT_I420 ? "i420" : "rgb24", (long long)pts_us);
    int rc = call_status(s, r);
    PyGILState_Release(g);
    free(buf);
    return rc;
}

int salrt_push_audio(salrt_session *s, const float *samples, int frames, int channels, int sample_rate) {
    if (!s) return SALRT_E_ARGUMENT;
    if (!samples || frames < 0 || channels <= 0 || sample_rate <= 0)
        return fail(s, SALRT_E_ARGUMENT, "push_audio: bad samples, channels or rate");
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(s->obj, "push_audio", "y#ii", (const char *)samples,
                                      (Py_ssize_t)frames * channels * (Py_ssize_t)sizeof(float), channels,
                                      sample_rate);
    int rc = call_status(s, r);
    PyGILState_Release(g);
    return rc;
}

/* Calls a Session method returning None or (pts_us, bytes of float32, cols, rows). */
static int pull(salrt_session *s, PyObject *r, float *out, int capacity, int *cols, int *rows, int64_t *pts) {
    if (!r) {
        take_error(s->err, sizeof s->err);
        return SALRT_E_PYTHON;
    }
    if (r == Py_None) return fail(s, SALRT_E_NO_MAP, "no map yet: push frames first");
    long long t = 0;
    const char *data = NULL;
    Py_ssize_t n = 0;
    int c = 0, h = 0;
    if (!PyArg_ParseTuple(r, "Ly#ii", &t, &data, &n, &c, &h)) {
        take_error(s->err, sizeof s->err);
        return SALRT_E_PYTHON;
    }
    if (cols) *cols = c;
    if (rows) *rows = h;
    if (pts) *pts = t;
    if ((Py_ssize_t)capacity * (Py_ssize_t)sizeof(float) < n) {
        snprintf(s->err, sizeof s->err, "output buffer holds %d floats, %d needed", capacity, c * h);
        return SALRT_E_CAPACITY;
    }
    memcpy(out, data, n);
    return SALRT_OK;
}

int salrt_pull_map(salrt_session *s, float *out, int out_w, int out_h, int64_t *pts_us) {
    if (!s) return SALRT_E_ARGUMENT;
    if (!out || out_w <= 0 || out_h <= 0) return fail(s, SALRT_E_ARGUMENT, "pull_map: NULL buffer or bad size");
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(s->obj, "pull_map", "ii", out_w, out_h);
    int rc = pull(s, r, out, out_w * out_h, NULL, NULL, pts_us);
    Py_XDECREF(r);
    PyGILState_Release(g);
    return rc;
}

int salrt_pull_qp_offsets(salrt_session *s, int frame_w, int frame_h, int block, float strength, float *out,
                          int capacity, int *cols, int *rows) {
    if (!s) return SALRT_E_ARGUMENT;
    if (!out || frame_w <= 0 || frame_h <= 0 || block < 4)
        return fail(s, SALRT_E_ARGUMENT, "pull_qp_offsets: NULL buffer, bad frame size or block < 4");
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(s->obj, "pull_qp_offsets", "iiid", frame_w, frame_h, block, (double)strength);
    int rc = pull(s, r, out, capacity, cols, rows, NULL);
    Py_XDECREF(r);
    PyGILState_Release(g);
    return rc;
}

const char *salrt_last_error(const salrt_session *s) { return s ? s->err : g_create_err; }

void salrt_destroy(salrt_session *s) {
    if (!s) return;
    if (g_init_ok) {
        PyGILState_STATE g = PyGILState_Ensure();
        Py_XDECREF(s->obj);
        PyGILState_Release(g);
    }
    free(s);
}
