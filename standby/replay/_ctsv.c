/* Rows in LOAD DATA's default text format, as UTF-8 bytes: the fast engine's hot loop.
 *
 * Exactly `standby.replay.bulk.tsv_py(rows).encode("utf-8")` (the pure-Python reference the
 * tests compare this with): fields joined by tabs, rows ended by newlines; None is \N; bool is
 * 1 or 0; str has backslash, tab, newline, NUL and CR escaped as \\ \t \n \0 \r; an int is its
 * decimal digits; anything else is str(value), unescaped.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
} Out;

static int grow(Out *o, Py_ssize_t need) {
    if (o->len + need <= o->cap)
        return 0;
    Py_ssize_t cap = o->cap ? o->cap : 65536;
    while (cap < o->len + need)
        cap *= 2;
    char *b = PyMem_Realloc(o->buf, (size_t)cap);
    if (b == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->buf = b;
    o->cap = cap;
    return 0;
}

static int put(Out *o, const char *s, Py_ssize_t n) {
    if (grow(o, n) < 0)
        return -1;
    memcpy(o->buf + o->len, s, (size_t)n);
    o->len += n;
    return 0;
}

static int put_escaped(Out *o, const char *s, Py_ssize_t n) {
    /* At most two bytes out per byte in. UTF-8 continuation bytes never equal the escaped
     * ASCII values, so escaping the encoded bytes is escaping the characters. */
    if (grow(o, 2 * n) < 0)
        return -1;
    char *d = o->buf + o->len;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        switch (c) {
        case '\\': *d++ = '\\'; *d++ = '\\'; break;
        case '\t': *d++ = '\\'; *d++ = 't'; break;
        case '\n': *d++ = '\\'; *d++ = 'n'; break;
        case '\0': *d++ = '\\'; *d++ = '0'; break;
        case '\r': *d++ = '\\'; *d++ = 'r'; break;
        default: *d++ = c;
        }
    }
    o->len = d - o->buf;
    return 0;
}

static int put_str_of(Out *o, PyObject *v) {
    PyObject *s = PyObject_Str(v);
    if (s == NULL)
        return -1;
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    int rc = u == NULL ? -1 : put(o, u, n);
    Py_DECREF(s);
    return rc;
}

static int put_field(Out *o, PyObject *v) {
    if (v == Py_None)
        return put(o, "\\N", 2);
    if (v == Py_True)
        return put(o, "1", 1);
    if (v == Py_False)
        return put(o, "0", 1);
    if (PyLong_CheckExact(v)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow)
            return put_str_of(o, v);
        if (x == -1 && PyErr_Occurred())
            return -1;
        char tmp[32];
        int n = snprintf(tmp, sizeof tmp, "%lld", x);
        return put(o, tmp, n);
    }
    if (PyUnicode_Check(v)) {
        Py_ssize_t n;
        const char *u = PyUnicode_AsUTF8AndSize(v, &n);
        if (u == NULL)
            return -1;
        return put_escaped(o, u, n);
    }
    return put_str_of(o, v);
}

static PyObject *tsv(PyObject *self, PyObject *rows) {
    PyObject *it = PyObject_GetIter(rows);
    if (it == NULL)
        return NULL;
    Out o = {NULL, 0, 0};
    PyObject *row;
    while ((row = PyIter_Next(it)) != NULL) {
        PyObject *seq = PySequence_Fast(row, "tsv: a row must be a sequence");
        Py_DECREF(row);
        if (seq == NULL)
            goto fail;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        PyObject **items = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t i = 0; i < n; i++) {
            if ((i && put(&o, "\t", 1) < 0) || put_field(&o, items[i]) < 0) {
                Py_DECREF(seq);
                goto fail;
            }
        }
        Py_DECREF(seq);
        if (put(&o, "\n", 1) < 0)
            goto fail;
    }
    if (PyErr_Occurred())
        goto fail;
    Py_DECREF(it);
    PyObject *out = PyBytes_FromStringAndSize(o.buf ? o.buf : "", o.len);
    PyMem_Free(o.buf);
    return out;
fail:
    Py_DECREF(it);
    PyMem_Free(o.buf);
    return NULL;
}

static PyMethodDef methods[] = {
    {"tsv", tsv, METH_O, "Rows in LOAD DATA's text format, as UTF-8 bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "standby.replay._ctsv",
    "LOAD DATA text rows in C (see standby.replay.bulk).", -1, methods,
};

PyMODINIT_FUNC PyInit__ctsv(void) { return PyModule_Create(&module); }
