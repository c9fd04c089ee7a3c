/* Content-defined chunk boundaries (FastCDC with normalized chunking, Xia et al., USENIX ATC 2016),
 * cut exactly where the fastcdc package's chunker cuts for the same gear table, which the caller passes
 * in: that package stays the reference (tests/sync/test_native_cdc.py compares the two).
 *
 * Why native: the package yields one Python object per chunk through a generator that slices a
 * memoryview per chunk; a 128 MiB file has 131,072 chunks, and that loop, not the gear hash, was most of
 * the time spent building signatures (docs/decisions.md). Here the whole buffer is cut with the GIL
 * released and only the lengths come back.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static uint32_t gear[256];
static int gear_set = 0;

/* Where the chunk starting at data[0] ends (data holds at most the chunker's read size). */
static uint32_t cut_point(const uint8_t *data, uint32_t size, uint32_t mi, uint32_t ma, uint32_t cs,
                          uint32_t mask_s, uint32_t mask_l) {
    uint32_t pattern = 0;
    uint32_t i = mi < size ? mi : size;
    uint32_t barrier = cs < size ? cs : size;
    for (; i < barrier; i++) {
        pattern = (pattern >> 1) + gear[data[i]];
        if (!(pattern & mask_s))
            return i + 1;
    }
    barrier = ma < size ? ma : size;
    for (; i < barrier; i++) {
        pattern = (pattern >> 1) + gear[data[i]];
        if (!(pattern & mask_l))
            return i + 1;
    }
    return i;
}

static PyObject *py_set_gear(PyObject *self, PyObject *args) {
    PyObject *table;
    if (!PyArg_ParseTuple(args, "O", &table))
        return NULL;
    PyObject *seq = PySequence_Fast(table, "the gear table must be a sequence");
    if (seq == NULL)
        return NULL;
    if (PySequence_Fast_GET_SIZE(seq) != 256) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "the gear table must have 256 entries");
        return NULL;
    }
    uint32_t table_read[256];  /* the table in use changes only once all of the new one is valid */
    for (Py_ssize_t k = 0; k < 256; k++) {
        unsigned long value = PyLong_AsUnsignedLong(PySequence_Fast_GET_ITEM(seq, k));
        if (PyErr_Occurred() || value > 0xFFFFFFFFUL) {
            Py_DECREF(seq);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "gear entries are 32-bit");
            return NULL;
        }
        table_read[k] = (uint32_t)value;
    }
    Py_DECREF(seq);
    memcpy(gear, table_read, sizeof gear);
    gear_set = 1;
    Py_RETURN_NONE;
}

static PyObject *py_cut(PyObject *self, PyObject *args) {
    Py_buffer view;
    unsigned int mi, avg, ma;
    if (!PyArg_ParseTuple(args, "y*III", &view, &mi, &avg, &ma))
        return NULL;
    if (!gear_set || mi < 64 || avg < mi || ma < avg || avg < 2) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, gear_set ? "bad chunk sizes" : "set_gear was not called");
        return NULL;
    }
    /* The parameters the reference derives from (min, avg, max). */
    uint32_t offset_cs = mi + (mi + 1) / 2;
    if (offset_cs > avg)
        offset_cs = avg;
    uint32_t cs = avg - offset_cs;
    if (cs > ma)
        cs = ma;
    uint32_t bits = (uint32_t)lround(log2((double)avg));
    uint32_t mask_s = (uint32_t)((1ULL << (bits + 1)) - 1);
    uint32_t mask_l = (uint32_t)((1ULL << (bits - 1)) - 1);
    uint32_t read_size = ma > 65536 ? ma : 65536;

    const uint8_t *data = (const uint8_t *)view.buf;
    Py_ssize_t len = view.len;
    Py_ssize_t cap = len / mi + 2, count = 0;
    uint32_t *lengths = PyMem_RawMalloc((size_t)cap * sizeof(uint32_t));
    if (lengths == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t at = 0;
    while (at < len) {
        Py_ssize_t left = len - at;
        uint32_t size = left < (Py_ssize_t)read_size ? (uint32_t)left : read_size;
        uint32_t cp = cut_point(data + at, size, mi, ma, cs, mask_s, mask_l);
        lengths[count++] = cp;  /* cp >= 1 whenever size >= 1; chunks but the last are >= mi */
        at += cp;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *out = PyList_New(count);
    if (out != NULL) {
        for (Py_ssize_t k = 0; k < count; k++) {
            PyObject *n = PyLong_FromUnsignedLong(lengths[k]);
            if (n == NULL) {
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(out, k, n);
        }
    }
    PyMem_RawFree(lengths);
    return out;
}

/* digests(data, ends, fn) -> bytes: fn(chunk) for each chunk data[previous end:end], each result 16
 * bytes, end to end. The same digests as mapping fn over slices in Python, without a memoryview and a
 * slice object per chunk (two thirds of a 128 MiB file's signature time went to those). */
static PyObject *py_digests(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *ends, *fn;
    if (!PyArg_ParseTuple(args, "y*OO", &view, &ends, &fn))
        return NULL;
    PyObject *seq = PySequence_Fast(ends, "ends must be a sequence");
    if (seq == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * 16);
    if (out == NULL)
        goto fail;
    char *dest = PyBytes_AS_STRING(out);
    Py_ssize_t start = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t end = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(seq, k));
        if (end == -1 && PyErr_Occurred())
            goto fail;
        if (end < start || end > view.len) {
            PyErr_SetString(PyExc_ValueError, "chunk ends must grow and stay inside the data");
            goto fail;
        }
        PyObject *chunk = PyBytes_FromStringAndSize((const char *)view.buf + start, end - start);
        if (chunk == NULL)
            goto fail;
        PyObject *digest = PyObject_CallOneArg(fn, chunk);
        Py_DECREF(chunk);
        if (digest == NULL)
            goto fail;
        if (!PyBytes_Check(digest) || PyBytes_GET_SIZE(digest) != 16) {
            Py_DECREF(digest);
            PyErr_SetString(PyExc_ValueError, "a chunk digest must be 16 bytes");
            goto fail;
        }
        memcpy(dest + 16 * k, PyBytes_AS_STRING(digest), 16);
        Py_DECREF(digest);
        start = end;
    }
    Py_DECREF(seq);
    PyBuffer_Release(&view);
    return out;
fail:
    Py_XDECREF(out);
    Py_DECREF(seq);
    PyBuffer_Release(&view);
    return NULL;
}

/* Grid digests (grid.py): the value of a block read as one big-endian integer, modulo the Mersenne
 * prime 2^61 - 1, low 32 bits. Python's int.from_bytes(block, "big") % (2**61 - 1) is the reference.
 * Multiplying by 2^k modulo 2^61 - 1 is a rotation of the 61 bits, so no wider type is needed. */
#define M61 ((((uint64_t)1) << 61) - 1)

static inline uint64_t rot61(uint64_t h, unsigned k) { return ((h << k) & M61) | (h >> (61 - k)); }

static inline uint64_t reduce61(uint64_t x) {  /* x < 2^63: the same value modulo M61, below 2^61 */
    x = (x & M61) + (x >> 61);
    return (x & M61) + (x >> 61);
}

static inline uint64_t load_be64(const uint8_t *p) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, p, 8);
    return __builtin_bswap64(w);
#else
    uint64_t w = 0;
    for (int k = 0; k < 8; k++)
        w = (w << 8) | p[k];
    return w;
#endif
}

/* grid(data, block) -> bytes: a 4-byte big-endian digest of each whole block of data, in order. */
static PyObject *py_grid(PyObject *self, PyObject *args) {
    Py_buffer view;
    unsigned int block;
    if (!PyArg_ParseTuple(args, "y*I", &view, &block))
        return NULL;
    if (block == 0 || block % 8) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the block size must be a multiple of 8");
        return NULL;
    }
    Py_ssize_t count = view.len / block;
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * 4);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    uint8_t *dest = (uint8_t *)PyBytes_AS_STRING(out);
    const uint8_t *data = (const uint8_t *)view.buf;
    unsigned int words = block / 8;
    unsigned char *turns = PyMem_RawMalloc(words);
    if (turns == NULL) {
        Py_DECREF(out);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    /* Word i of n weighs 2^(64 (n - 1 - i)) = 8^(n - 1 - i) modulo M61: a rotation by 3 (n - 1 - i) mod 61.
     * So the words are independent terms of one sum (no chain of dependent steps, as in Horner's
     * rule), which the processor overlaps: ~25 ms per 128 MiB here. */
    for (unsigned int i = 0; i < words; i++)
        turns[i] = (unsigned char)((3ULL * (words - 1 - i)) % 61);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = 0; b < count; b++) {
        const uint8_t *p = data + (size_t)b * block;
        uint64_t sum = 0;
        for (unsigned int i = 0; i < words; i++) {
            uint64_t w = load_be64(p + 8 * i);
            uint64_t x = (w & M61) + (w >> 61);
            x = (x & M61) + (x >> 61);  /* w modulo M61, below 2^61 */
            sum += rot61(x, turns[i]);
            if ((i & 3) == 3)  /* four terms below 2^61 each, on a sum kept below 2^61 + 4 */
                sum = (sum & M61) + (sum >> 61);
        }
        uint64_t h = reduce61(sum);
        if (h >= M61)
            h -= M61;
        dest[4 * b] = (uint8_t)(h >> 24);
        dest[4 * b + 1] = (uint8_t)(h >> 16);
        dest[4 * b + 2] = (uint8_t)(h >> 8);
        dest[4 * b + 3] = (uint8_t)h;
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(turns);
    PyBuffer_Release(&view);
    return out;
}

/* windows(data, block) -> bytes: the grid digest of data[k:k + block] for every k, 4 bytes each,
 * rolled one byte at a time. */
static PyObject *py_windows(PyObject *self, PyObject *args) {
    Py_buffer view;
    unsigned int block;
    if (!PyArg_ParseTuple(args, "y*I", &view, &block))
        return NULL;
    if (block == 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the block size must be positive");
        return NULL;
    }
    Py_ssize_t count = view.len >= block ? view.len - block + 1 : 0;
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * 4);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    uint8_t *dest = (uint8_t *)PyBytes_AS_STRING(out);
    const uint8_t *data = (const uint8_t *)view.buf;
    uint64_t leaving[256];  /* b * 256^(block - 1) mod M61: what a byte weighs as it leaves the window */
    uint64_t top = 1;
    for (unsigned int i = 1; i < block; i++)
        top = reduce61(rot61(top, 8));
    for (int b = 0; b < 256; b++) {
        uint64_t v = 0;  /* b * top by doubling: every step stays below 2^62 */
        for (int bit = 7; bit >= 0; bit--) {
            v = reduce61(rot61(v, 1));
            if (b >> bit & 1)
                v = reduce61(v + top);
        }
        leaving[b] = v;
    }
    uint64_t h = 0;
    for (Py_ssize_t k = 0; k < count + (Py_ssize_t)block - 1; k++) {
        if (k >= (Py_ssize_t)block)
            h = reduce61(h + M61 - leaving[data[k - block]]);
        h = reduce61(rot61(h, 8) + data[k]);
        if (k >= (Py_ssize_t)block - 1) {
            uint64_t v = h >= M61 ? h - M61 : h;
            uint8_t *d = dest + 4 * (k - block + 1);
            d[0] = (uint8_t)(v >> 24);
            d[1] = (uint8_t)(v >> 16);
            d[2] = (uint8_t)(v >> 8);
            d[3] = (uint8_t)v;
        }
    }
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"digests", py_digests, METH_VARARGS,
     "digests(data, ends, fn) -> bytes: fn(data[previous end:end]) for each end, 16 bytes each, end to end."},
    {"grid", py_grid, METH_VARARGS,
     "grid(data, block) -> bytes: a 4-byte digest of each whole block of data (see grid.py)."},
    {"windows", py_windows, METH_VARARGS,
     "windows(data, block) -> bytes: the grid digest of every block-long window of data, 4 bytes each."},
    {"set_gear", py_set_gear, METH_VARARGS, "set_gear(table): the 256 32-bit gear values to cut with."},
    {"cut", py_cut, METH_VARARGS,
     "cut(data, min, avg, max) -> [length, ...]: the chunk lengths of data, in order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cdc", "Native content-defined chunk boundaries.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cdc(void) { return PyModule_Create(&module); }
