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

/* The chunk boundaries [0, ends...] as count + 1 offsets, each checked to grow and stay within len;
 * NULL with an exception set otherwise. Free them with PyMem_RawFree. */
static Py_ssize_t *read_ends(PyObject *ends, Py_ssize_t len, Py_ssize_t *count) {
    PyObject *seq = PySequence_Fast(ends, "ends must be a sequence");
    if (seq == NULL)
        return NULL;
    *count = PySequence_Fast_GET_SIZE(seq);
    Py_ssize_t *at = PyMem_RawMalloc(sizeof(Py_ssize_t) * (size_t)(*count + 1));
    if (at == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return NULL;
    }
    at[0] = 0;
    for (Py_ssize_t k = 0; k < *count; k++) {
        Py_ssize_t end = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(seq, k));
        if (end == -1 && PyErr_Occurred())
            goto fail;
        if (end < at[k] || end > len) {
            PyErr_SetString(PyExc_ValueError, "chunk ends must grow and stay inside the data");
            goto fail;
        }
        at[k + 1] = end;
    }
    Py_DECREF(seq);
    return at;
fail:
    PyMem_RawFree(at);
    Py_DECREF(seq);
    return NULL;
}

/* digests(data, ends, fn) -> bytes: fn(chunk) for each chunk data[previous end:end], each result 16
 * bytes, end to end. The same digests as mapping fn over slices in Python, without a memoryview and a
 * slice object per chunk (two thirds of a 128 MiB file's signature time went to those). */
static PyObject *py_digests(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *ends, *fn;
    if (!PyArg_ParseTuple(args, "y*OO", &view, &ends, &fn))
        return NULL;
    Py_ssize_t count = 0;
    Py_ssize_t *at = read_ends(ends, view.len, &count);
    PyObject *out = at == NULL ? NULL : PyBytes_FromStringAndSize(NULL, count * 16);
    if (out == NULL)
        goto fail;
    char *dest = PyBytes_AS_STRING(out);
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *chunk = PyBytes_FromStringAndSize((const char *)view.buf + at[k], at[k + 1] - at[k]);
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
    }
    PyMem_RawFree(at);
    PyBuffer_Release(&view);
    return out;
fail:
    Py_XDECREF(out);
    PyMem_RawFree(at);
    PyBuffer_Release(&view);
    return NULL;
}

/* The chunk digests of digests() computed here, with the GIL released, by XXH3-128: the function the
 * xxhash package's extension exports (the caller finds its address, set_chunk_hash, and checks its
 * digests against the package's; chunking.py). Through fn, each chunk costs a bytes object and a call
 * under the GIL: a large file's scan held it ~50 ms per 128 MiB there, and every other thread waited. */
typedef struct {
    uint64_t low64, high64;
} hash128;
typedef hash128 (*hash128_fn)(const void *, size_t);
static hash128_fn chunk_hash = NULL;

static PyObject *py_set_chunk_hash(PyObject *self, PyObject *args) {
    unsigned long long address;
    if (!PyArg_ParseTuple(args, "K", &address))
        return NULL;
    chunk_hash = (hash128_fn)(uintptr_t)address;
    Py_RETURN_NONE;
}

static void put_be64(uint8_t *d, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8)
        d[i] = (uint8_t)v;
}

/* hashed_digests(data, ends) -> bytes: as digests(data, ends, xxhash.xxh3_128_digest). */
static PyObject *py_hashed_digests(PyObject *self, PyObject *args) {
    Py_buffer view;
    PyObject *ends;
    if (!PyArg_ParseTuple(args, "y*O", &view, &ends))
        return NULL;
    if (chunk_hash == NULL) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "set_chunk_hash was not called");
        return NULL;
    }
    Py_ssize_t count = 0;
    Py_ssize_t *at = read_ends(ends, view.len, &count);
    PyObject *out = at == NULL ? NULL : PyBytes_FromStringAndSize(NULL, count * 16);
    if (out == NULL) {
        PyMem_RawFree(at);
        PyBuffer_Release(&view);
        return NULL;
    }
    uint8_t *dest = (uint8_t *)PyBytes_AS_STRING(out);
    const uint8_t *data = (const uint8_t *)view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < count; k++) {
        hash128 h = chunk_hash(data + at[k], (size_t)(at[k + 1] - at[k]));
        put_be64(dest + 16 * k, h.high64);  /* the canonical form: high half first, big-endian */
        put_be64(dest + 16 * k + 8, h.low64);
    }
    Py_END_ALLOW_THREADS
    PyMem_RawFree(at);
    PyBuffer_Release(&view);
    return out;
}

/* join(a, b) -> bytes: a + b, copied with the GIL released (a chunker joins the few KiB it held back
 * to each 4 MiB block it reads; under the GIL that copy held it ~70 ms per 256 MiB scanned). */
static PyObject *py_join(PyObject *self, PyObject *args) {
    Py_buffer a, b;
    if (!PyArg_ParseTuple(args, "y*y*", &a, &b))
        return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, a.len + b.len);
    if (out != NULL) {
        char *dest = PyBytes_AS_STRING(out);
        Py_BEGIN_ALLOW_THREADS
        memcpy(dest, a.buf, (size_t)a.len);
        memcpy(dest + a.len, b.buf, (size_t)b.len);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    return out;
}

/* Grid digests (grid.py): NH, the hash of UMAC (Black et al., CRYPTO 1999), of a block read as
 * little-endian 64-bit words w with fixed keys k: the sum modulo 2^128 of the products
 * ((w[2i] + k[2i]) mod 2^64) * ((w[2i+1] + k[2i+1]) mod 2^64), its two halves XORed, mixed by
 * MurmurHash3's fmix64, top 32 bits. One multiply per 16 bytes,
 * ~5 ms per 128 MiB here, where the value modulo 2^61 - 1 first used took 25 ms. grid.py computes the
 * same in Python (the reference) from the same keys: splitmix64 of 1, 2, 3... Needs a 128-bit type;
 * without one neither function is built, and that device keeps no grids. */
#ifdef __SIZEOF_INT128__
typedef unsigned __int128 u128;

static uint64_t nh_key(uint64_t i) {
    uint64_t z = (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t load_le64(const uint8_t *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
#else
    uint64_t w = 0;
    for (int k = 7; k >= 0; k--)
        w = (w << 8) | p[k];
    return w;
#endif
}

static inline uint32_t nh_digest(const uint8_t *p, unsigned int words, const uint64_t *keys) {
    u128 sum = 0;
    for (unsigned int i = 0; i < words; i += 2)
        sum += (u128)(load_le64(p + 8 * i) + keys[i]) * (load_le64(p + 8 * i + 8) + keys[i + 1]);
    /* All 128 bits folded and mixed (MurmurHash3's fmix64): a change in a word's low bytes moves the
     * sum's low bits, and its top 32 bits alone let windows an edit had touched pass for old blocks. */
    uint64_t x = (uint64_t)sum ^ (uint64_t)(sum >> 64);
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDULL;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53ULL;
    x ^= x >> 33;
    return (uint32_t)(x >> 32);
}

static inline void put_be32(uint8_t *d, uint32_t v) {
    d[0] = (uint8_t)(v >> 24);
    d[1] = (uint8_t)(v >> 16);
    d[2] = (uint8_t)(v >> 8);
    d[3] = (uint8_t)v;
}

/* The digests of data's blocks of `block` bytes starting every `step` bytes (block for the grid, 1
 * for every window), 4 bytes each, big-endian. */
static PyObject *nh_digests(PyObject *args, int every_byte) {
    Py_buffer view;
    unsigned int block;
    if (!PyArg_ParseTuple(args, "y*I", &view, &block))
        return NULL;
    if (block == 0 || block % 16 || block > 65536) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the block size must be a multiple of 16, at most 64 KiB");
        return NULL;
    }
    Py_ssize_t step = every_byte ? 1 : block;
    Py_ssize_t count = view.len < block ? 0 : (view.len - block) / step + 1;
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * 4);
    uint64_t *keys = PyMem_RawMalloc(sizeof(uint64_t) * (block / 8));
    if (out == NULL || keys == NULL) {
        Py_XDECREF(out);
        PyMem_RawFree(keys);
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    for (unsigned int i = 0; i < block / 8; i++)
        keys[i] = nh_key(i);
    uint8_t *dest = (uint8_t *)PyBytes_AS_STRING(out);
    const uint8_t *data = (const uint8_t *)view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < count; k++)
        put_be32(dest + 4 * k, nh_digest(data + k * step, block / 8, keys));
    Py_END_ALLOW_THREADS
    PyMem_RawFree(keys);
    PyBuffer_Release(&view);
    return out;
}

/* grid(data, block) -> bytes: the digest of each whole block of data, in order. */
static PyObject *py_grid(PyObject *self, PyObject *args) { return nh_digests(args, 0); }

/* windows(data, block) -> bytes: the digest of data[k:k + block] for every k. */
static PyObject *py_windows(PyObject *self, PyObject *args) { return nh_digests(args, 1); }
#endif

static PyMethodDef methods[] = {
    {"digests", py_digests, METH_VARARGS,
     "digests(data, ends, fn) -> bytes: fn(data[previous end:end]) for each end, 16 bytes each, end to end."},
    {"set_chunk_hash", py_set_chunk_hash, METH_VARARGS,
     "set_chunk_hash(address): the XXH3_128bits function hashed_digests calls."},
    {"hashed_digests", py_hashed_digests, METH_VARARGS,
     "hashed_digests(data, ends) -> bytes: the XXH3-128 digest of each chunk, canonical, end to end, without the GIL."},
    {"join", py_join, METH_VARARGS, "join(a, b) -> bytes: a + b, copied without the GIL."},
#ifdef __SIZEOF_INT128__
    {"grid", py_grid, METH_VARARGS,
     "grid(data, block) -> bytes: a 4-byte digest of each whole block of data (see grid.py)."},
    {"windows", py_windows, METH_VARARGS,
     "windows(data, block) -> bytes: the grid digest of every block-long window of data, 4 bytes each."},
#endif
    {"set_gear", py_set_gear, METH_VARARGS, "set_gear(table): the 256 32-bit gear values to cut with."},
    {"cut", py_cut, METH_VARARGS,
     "cut(data, min, avg, max) -> [length, ...]: the chunk lengths of data, in order."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cdc", "Native content-defined chunk boundaries.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cdc(void) { return PyModule_Create(&module); }
