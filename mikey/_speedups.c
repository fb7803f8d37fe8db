/*
 * Optional accelerator for mikey.prf and mikey.crypto (the MIKEY key schedule and KEMAC).
 *
 * mikey.prf and mikey.crypto are complete in Python and stay the reference; this module only
 * does the same computations in fewer steps, the way aioquic's _buffer.c and _crypto.c do for
 * aioquic. tests/mikey/test_speedups.py checks it against the Python code and the RFC vectors.
 *
 *   prf(digest, inkey, label, length, minisip_compat) -> bytearray
 *       RFC 3830 §4.1.2: inkey split into 256-bit chunks, P(s_i, label, m) per chunk, XOR,
 *       truncated. digest 1 = HMAC-SHA-1 (PRF func MIKEY-1), 2 = HMAC-SHA-256 (RFC 6043).
 *       Each chunk's HMAC key is prepared once (inner and outer hash state after the padded
 *       key block, RFC 2104) and copied per HMAC, so one PRF block costs four compressions.
 *   prf_many(digest, inkey, tail, wanted, minisip_compat) -> list[bytearray]
 *       prf(digest, inkey, const || tail, length) for each (const, length) of wanted, with the
 *       chunks prepared once for all of them (the transport keys, TEK and salt).
 *   hmac(digest, key, data) -> bytes
 *   aes_ctr(key, iv, data) -> bytearray
 *       AES-CTR with a 128-bit big-endian counter (AES-CM as MIKEY and SRTP use it), AES-128
 *       or AES-256 by key length.
 *   modexp(base, exponent, modulus) -> bytearray
 *       base^exponent mod modulus (big-endian, output as long as the modulus) with OpenSSL's
 *       constant-time Montgomery exponentiation, for the DH private exponent (Python's pow
 *       takes time that depends on the exponent's bits). Odd modulus only.
 *   cleanse(*buffers) -> None
 *       Overwrite each writable buffer with zeros (OPENSSL_cleanse, which the compiler may not
 *       drop); None is skipped. The wipe of every key buffer in mikey, srtp and the glue.
 *   fill_slots(obj, descriptors, *values) -> None
 *       Store each value through its slot's member descriptor (tp_descr_set, what
 *       ``descriptor.__set__(obj, value)`` does, without a bound method call per field): the body
 *       of mikey._frozen.fast_init's __init__.
 *   jacobi(a, n) -> int
 *       The Jacobi symbol (a/n) for odd n > 0 (OpenSSL's BN_kronecker), the DH subgroup check
 *       of a public peer value.
 *
 * Every buffer that held key material or keyed hash state is cleansed before it is freed.
 * Errors are ValueError/TypeError with fixed texts (the Python callers check arguments before
 * calling; nothing here puts data in a message).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string.h>

/* The one-shot SHA state API is deprecated in OpenSSL 3 but is the cheapest way to copy a
 * keyed hash state: a struct copy, no allocation, no provider lookup. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#define CHUNK 32        /* RFC 3830 §4.1.2: 256-bit inkey pieces */
#define HASH_BLOCK 64   /* SHA-1 and SHA-256 block size */
#define MAX_DIGEST 32
#define MAX_OUTPUT 65536
#define MAX_LABEL 4096

enum { DIGEST_SHA1 = 1, DIGEST_SHA256 = 2 };

typedef union {
    SHA_CTX sha1;
    SHA256_CTX sha256;
} hash_state;

typedef struct {
    int digest;
    size_t size;
    hash_state inner;
    hash_state outer;
} hmac_key;

static EVP_CIPHER *aes128_ctr;
static EVP_CIPHER *aes256_ctr;

static size_t digest_size(int digest) { return digest == DIGEST_SHA1 ? 20 : 32; }

static void hash_init(int digest, hash_state *st) {
    if (digest == DIGEST_SHA1)
        SHA1_Init(&st->sha1);
    else
        SHA256_Init(&st->sha256);
}

static void hash_update(int digest, hash_state *st, const unsigned char *data, size_t n) {
    if (digest == DIGEST_SHA1)
        SHA1_Update(&st->sha1, data, n);
    else
        SHA256_Update(&st->sha256, data, n);
}

static void hash_final(int digest, hash_state *st, unsigned char *out) {
    if (digest == DIGEST_SHA1)
        SHA1_Final(out, &st->sha1);
    else
        SHA256_Final(out, &st->sha256);
}

/* RFC 2104: hash the padded key into the inner (ipad) and outer (opad) states once. */
static void hmac_key_init(hmac_key *hk, int digest, const unsigned char *key, size_t n) {
    unsigned char block[HASH_BLOCK];
    hash_state tmp;
    size_t i;

    hk->digest = digest;
    hk->size = digest_size(digest);
    memset(block, 0, sizeof block);
    if (n > HASH_BLOCK) {
        hash_init(digest, &tmp);
        hash_update(digest, &tmp, key, n);
        hash_final(digest, &tmp, block);
        OPENSSL_cleanse(&tmp, sizeof tmp);
    } else if (n) {
        memcpy(block, key, n);
    }
    for (i = 0; i < HASH_BLOCK; i++) block[i] ^= 0x36;
    hash_init(digest, &hk->inner);
    hash_update(digest, &hk->inner, block, HASH_BLOCK);
    for (i = 0; i < HASH_BLOCK; i++) block[i] ^= 0x36 ^ 0x5c;
    hash_init(digest, &hk->outer);
    hash_update(digest, &hk->outer, block, HASH_BLOCK);
    OPENSSL_cleanse(block, sizeof block);
}

/* HMAC(key, a || b) into out (hk->size bytes). */
static void hmac_run(const hmac_key *hk, const unsigned char *a, size_t na,
                     const unsigned char *b, size_t nb, unsigned char *out) {
    hash_state st;
    unsigned char inner[MAX_DIGEST];

    st = hk->inner;
    if (na) hash_update(hk->digest, &st, a, na);
    if (nb) hash_update(hk->digest, &st, b, nb);
    hash_final(hk->digest, &st, inner);
    st = hk->outer;
    hash_update(hk->digest, &st, inner, hk->size);
    hash_final(hk->digest, &st, out);
    OPENSSL_cleanse(&st, sizeof st);
    OPENSSL_cleanse(inner, sizeof inner);
}

/* The chunks of an inkey, each as a prepared HMAC key. */
typedef struct {
    size_t count;
    hmac_key *keys;
} chunk_keys;

static void chunk_keys_free(chunk_keys *ck) {
    if (ck->keys) {
        OPENSSL_cleanse(ck->keys, ck->count * sizeof(hmac_key));
        PyMem_Free(ck->keys);
    }
    ck->keys = NULL;
    ck->count = 0;
}

static int chunk_keys_init(chunk_keys *ck, int digest, const unsigned char *inkey, size_t size,
                           int minisip_compat) {
    size_t i, start, len;

    ck->count = size < CHUNK ? 1 : (size + CHUNK - 1) / CHUNK;
    ck->keys = PyMem_Calloc(ck->count, sizeof(hmac_key));
    if (!ck->keys) {
        ck->count = 0;
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < ck->count; i++) {
        start = i * CHUNK;
        len = size - start < CHUNK ? size - start : CHUNK;
        /* minisip: last chunk length = len % 32, i.e. an empty key for a multiple of 32. */
        if (minisip_compat && size >= CHUNK && start + CHUNK == size) len = size % CHUNK;
        hmac_key_init(&ck->keys[i], digest, inkey + start, len);
    }
    return 0;
}

/* PRF(inkey, label, length) into out (RFC 3830 §4.1.2), out zeroed by the caller. */
static int prf_into(const chunk_keys *ck, const unsigned char *label, size_t nlabel,
                    unsigned char *out, size_t length) {
    unsigned char a[MAX_DIGEST], block[MAX_DIGEST];
    size_t i, pos, take, j, size;
    const hmac_key *hk;

    if (!length) return 0;
    size = ck->keys[0].size;
    for (i = 0; i < ck->count; i++) {
        hk = &ck->keys[i];
        /* A_0 = label, A_i = HMAC(s, A_{i-1}); block_i = HMAC(s, A_i || label) */
        hmac_run(hk, label, nlabel, NULL, 0, a);
        for (pos = 0; pos < length; pos += size) {
            hmac_run(hk, a, size, label, nlabel, block);
            take = length - pos < size ? length - pos : size;
            for (j = 0; j < take; j++) out[pos + j] ^= block[j];
            if (pos + size < length) hmac_run(hk, a, size, NULL, 0, a);
        }
    }
    OPENSSL_cleanse(a, sizeof a);
    OPENSSL_cleanse(block, sizeof block);
    return 0;
}

static int check_digest(int digest) {
    if (digest != DIGEST_SHA1 && digest != DIGEST_SHA256) {
        PyErr_SetString(PyExc_ValueError, "unknown digest");
        return -1;
    }
    return 0;
}

static PyObject *new_zeroed_bytearray(Py_ssize_t n) {
    PyObject *out = PyByteArray_FromStringAndSize(NULL, n);
    if (out && n) memset(PyByteArray_AS_STRING(out), 0, (size_t)n);
    return out;
}

static PyObject *speedups_prf(PyObject *self, PyObject *args) {
    int digest, compat;
    Py_buffer inkey, label;
    Py_ssize_t length;
    chunk_keys ck = {0, NULL};
    PyObject *out = NULL;

    if (!PyArg_ParseTuple(args, "iy*y*np", &digest, &inkey, &label, &length, &compat))
        return NULL;
    if (check_digest(digest) < 0) goto done;
    if (inkey.len <= 0 || length < 0 || length > MAX_OUTPUT) {
        PyErr_SetString(PyExc_ValueError, "PRF inkey empty or output length out of range");
        goto done;
    }
    out = new_zeroed_bytearray(length);
    if (!out) goto done;
    if (chunk_keys_init(&ck, digest, inkey.buf, (size_t)inkey.len, compat) < 0) {
        Py_CLEAR(out);
        goto done;
    }
    prf_into(&ck, label.buf, (size_t)label.len, (unsigned char *)PyByteArray_AS_STRING(out),
             (size_t)length);
done:
    chunk_keys_free(&ck);
    PyBuffer_Release(&inkey);
    PyBuffer_Release(&label);
    return out;
}

static PyObject *speedups_prf_many(PyObject *self, PyObject *args) {
    int digest, compat;
    Py_buffer inkey, tail;
    PyObject *wanted, *seq = NULL, *result = NULL;
    chunk_keys ck = {0, NULL};
    unsigned char label[4 + MAX_LABEL];
    Py_ssize_t i, n;

    if (!PyArg_ParseTuple(args, "iy*y*Op", &digest, &inkey, &tail, &wanted, &compat))
        return NULL;
    if (check_digest(digest) < 0) goto done;
    if (inkey.len <= 0 || tail.len > MAX_LABEL) {
        PyErr_SetString(PyExc_ValueError, "PRF inkey empty or label too long");
        goto done;
    }
    seq = PySequence_Fast(wanted, "wanted must be a sequence of (constant, length)");
    if (!seq) goto done;
    n = PySequence_Fast_GET_SIZE(seq);
    result = PyList_New(n);
    if (!result) goto done;
    if (chunk_keys_init(&ck, digest, inkey.buf, (size_t)inkey.len, compat) < 0) goto fail;
    memcpy(label + 4, tail.buf, (size_t)tail.len);
    for (i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i), *out;
        unsigned long konst;
        Py_ssize_t length;

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "wanted items must be (constant, length) tuples");
            goto fail;
        }
        konst = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(item, 0));
        if (konst == (unsigned long)-1 && PyErr_Occurred()) goto fail;
        length = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 1));
        if (length == -1 && PyErr_Occurred()) goto fail;
        if (konst > 0xFFFFFFFFUL || length < 0 || length > MAX_OUTPUT) {
            PyErr_SetString(PyExc_ValueError, "label constant or output length out of range");
            goto fail;
        }
        label[0] = (unsigned char)(konst >> 24);
        label[1] = (unsigned char)(konst >> 16);
        label[2] = (unsigned char)(konst >> 8);
        label[3] = (unsigned char)konst;
        out = new_zeroed_bytearray(length);
        if (!out) goto fail;
        PyList_SET_ITEM(result, i, out);
        prf_into(&ck, label, 4 + (size_t)tail.len, (unsigned char *)PyByteArray_AS_STRING(out),
                 (size_t)length);
    }
    goto done;
fail:
    if (result) { /* wipe what was already derived before dropping it */
        for (i = 0; i < PyList_GET_SIZE(result); i++) {
            PyObject *out = PyList_GET_ITEM(result, i);
            if (out) OPENSSL_cleanse(PyByteArray_AS_STRING(out), (size_t)PyByteArray_GET_SIZE(out));
        }
    }
    Py_CLEAR(result);
done:
    chunk_keys_free(&ck);
    Py_XDECREF(seq);
    PyBuffer_Release(&inkey);
    PyBuffer_Release(&tail);
    return result;
}

static PyObject *speedups_hmac(PyObject *self, PyObject *args) {
    int digest;
    Py_buffer key, data;
    hmac_key hk;
    unsigned char out[MAX_DIGEST];
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "iy*y*", &digest, &key, &data)) return NULL;
    if (check_digest(digest) == 0) {
        hmac_key_init(&hk, digest, key.buf, (size_t)key.len);
        hmac_run(&hk, data.buf, (size_t)data.len, NULL, 0, out);
        OPENSSL_cleanse(&hk, sizeof hk);
        result = PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)digest_size(digest));
        OPENSSL_cleanse(out, sizeof out);
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&data);
    return result;
}

static PyObject *speedups_aes_ctr(PyObject *self, PyObject *args) {
    Py_buffer key, iv, data;
    PyObject *out = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    const EVP_CIPHER *cipher;
    int n = 0, fin = 0;

    if (!PyArg_ParseTuple(args, "y*y*y*", &key, &iv, &data)) return NULL;
    cipher = key.len == 16 ? aes128_ctr : key.len == 32 ? aes256_ctr : NULL;
    if (!cipher || iv.len != 16 || data.len > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "AES-CTR needs a 16/32-byte key and a 16-byte IV");
        goto done;
    }
    out = PyByteArray_FromStringAndSize(NULL, data.len);
    if (!out) goto done;
    if (!data.len) goto done;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || !EVP_EncryptInit_ex2(ctx, cipher, key.buf, iv.buf, NULL) ||
        !EVP_EncryptUpdate(ctx, (unsigned char *)PyByteArray_AS_STRING(out), &n, data.buf,
                           (int)data.len) ||
        !EVP_EncryptFinal_ex(ctx, (unsigned char *)PyByteArray_AS_STRING(out) + n, &fin) ||
        n + fin != (int)data.len) {
        OPENSSL_cleanse(PyByteArray_AS_STRING(out), (size_t)data.len);
        Py_CLEAR(out);
        PyErr_SetString(PyExc_ValueError, "AES-CTR failed");
    }
done:
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    PyBuffer_Release(&key);
    PyBuffer_Release(&iv);
    PyBuffer_Release(&data);
    return out;
}

static PyObject *speedups_modexp(PyObject *self, PyObject *args) {
    Py_buffer base, exponent, modulus;
    BIGNUM *b = NULL, *e = NULL, *m = NULL, *r = NULL;
    BN_CTX *bn = NULL;
    PyObject *out = NULL;

    if (!PyArg_ParseTuple(args, "y*y*y*", &base, &exponent, &modulus)) return NULL;
    if (modulus.len <= 0 || modulus.len > 1024 || exponent.len > 1024 || base.len > 1024 ||
        !(((const unsigned char *)modulus.buf)[modulus.len - 1] & 1)) {
        PyErr_SetString(PyExc_ValueError, "modexp needs an odd modulus of 1..8192 bits");
        goto done;
    }
    bn = BN_CTX_secure_new();
    b = BN_bin2bn(base.buf, (int)base.len, NULL);
    e = BN_secure_new();
    m = BN_bin2bn(modulus.buf, (int)modulus.len, NULL);
    r = BN_secure_new();
    if (!bn || !b || !e || !m || !r || !BN_bin2bn(exponent.buf, (int)exponent.len, e)) {
        PyErr_NoMemory();
        goto done;
    }
    BN_set_flags(e, BN_FLG_CONSTTIME);
    out = PyByteArray_FromStringAndSize(NULL, modulus.len);
    if (!out) goto done;
    if (!BN_mod_exp_mont_consttime(r, b, e, m, bn, NULL) ||
        BN_bn2binpad(r, (unsigned char *)PyByteArray_AS_STRING(out), (int)modulus.len) < 0) {
        Py_CLEAR(out);
        PyErr_SetString(PyExc_ValueError, "modexp failed");
    }
done:
    BN_clear_free(b);
    BN_clear_free(e);
    BN_free(m);
    BN_clear_free(r);
    BN_CTX_free(bn);
    PyBuffer_Release(&base);
    PyBuffer_Release(&exponent);
    PyBuffer_Release(&modulus);
    return out;
}

static PyObject *speedups_jacobi(PyObject *self, PyObject *args) {
    Py_buffer a, n;
    BIGNUM *ba = NULL, *bn_ = NULL;
    BN_CTX *ctx = NULL;
    PyObject *out = NULL;
    int k;

    if (!PyArg_ParseTuple(args, "y*y*", &a, &n)) return NULL;
    if (n.len <= 0 || n.len > 1024 || a.len > 1024 ||
        !(((const unsigned char *)n.buf)[n.len - 1] & 1)) {
        PyErr_SetString(PyExc_ValueError, "jacobi needs an odd n of 1..8192 bits");
        goto done;
    }
    ctx = BN_CTX_new();
    ba = BN_bin2bn(a.buf, (int)a.len, NULL);
    bn_ = BN_bin2bn(n.buf, (int)n.len, NULL);
    if (!ctx || !ba || !bn_) {
        PyErr_NoMemory();
        goto done;
    }
    k = BN_kronecker(ba, bn_, ctx);
    if (k == -2) {
        PyErr_SetString(PyExc_ValueError, "jacobi failed");
        goto done;
    }
    out = PyLong_FromLong(k);
done:
    BN_free(ba);
    BN_free(bn_);
    BN_CTX_free(ctx);
    PyBuffer_Release(&a);
    PyBuffer_Release(&n);
    return out;
}

static PyObject *speedups_cleanse(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    Py_ssize_t i;
    Py_buffer view;

    for (i = 0; i < nargs; i++) {
        if (args[i] == Py_None) continue;
        if (PyByteArray_CheckExact(args[i])) {
            OPENSSL_cleanse(PyByteArray_AS_STRING(args[i]), (size_t)PyByteArray_GET_SIZE(args[i]));
            continue;
        }
        if (PyObject_GetBuffer(args[i], &view, PyBUF_WRITABLE) < 0) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "cannot wipe a %.100s", Py_TYPE(args[i])->tp_name);
            return NULL;
        }
        OPENSSL_cleanse(view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    }
    Py_RETURN_NONE;
}

static PyObject *speedups_fill_slots(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *obj, *descriptors, *d;
    Py_ssize_t i, n;
    descrsetfunc set;

    if (nargs < 2 || !PyTuple_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fill_slots(obj, descriptors, *values)");
        return NULL;
    }
    obj = args[0];
    descriptors = args[1];
    n = PyTuple_GET_SIZE(descriptors);
    if (nargs - 2 != n) {
        PyErr_SetString(PyExc_TypeError, "fill_slots: one value per descriptor");
        return NULL;
    }
    for (i = 0; i < n; i++) {
        d = PyTuple_GET_ITEM(descriptors, i);
        set = Py_TYPE(d)->tp_descr_set;
        if (set == NULL) {
            PyErr_SetString(PyExc_TypeError, "fill_slots: not a data descriptor");
            return NULL;
        }
        if (set(d, obj, args[2 + i]) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef speedups_methods[] = {
    {"prf", speedups_prf, METH_VARARGS, "PRF(inkey, label, length) of RFC 3830 §4.1.2."},
    {"prf_many", speedups_prf_many, METH_VARARGS,
     "PRF(inkey, const || tail, length) for each (const, length)."},
    {"hmac", speedups_hmac, METH_VARARGS, "HMAC-SHA-1 (1) or HMAC-SHA-256 (2) of data."},
    {"aes_ctr", speedups_aes_ctr, METH_VARARGS, "AES-CTR with a 128-bit counter."},
    {"modexp", speedups_modexp, METH_VARARGS, "Constant-time base^exponent mod modulus."},
    {"jacobi", speedups_jacobi, METH_VARARGS, "Jacobi symbol (a/n) for odd n."},
    {"fill_slots", (PyCFunction)(void (*)(void))speedups_fill_slots, METH_FASTCALL,
     "Store each value through its member descriptor."},
    {"cleanse", (PyCFunction)(void (*)(void))speedups_cleanse, METH_FASTCALL,
     "Overwrite each writable buffer with zeros (None is skipped)."},
    {NULL, NULL, 0, NULL},
};

static void speedups_free(void *module) {
    EVP_CIPHER_free(aes128_ctr);
    EVP_CIPHER_free(aes256_ctr);
    aes128_ctr = aes256_ctr = NULL;
}

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "mikey._speedups", "C accelerator for mikey.prf and mikey.crypto.",
    -1, speedups_methods, NULL, NULL, NULL, speedups_free,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    PyObject *m;

    if (!aes128_ctr) aes128_ctr = EVP_CIPHER_fetch(NULL, "AES-128-CTR", NULL);
    if (!aes256_ctr) aes256_ctr = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
    if (!aes128_ctr || !aes256_ctr) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no AES-CTR");
        return NULL;
    }
    m = PyModule_Create(&speedups_module);
    if (m && (PyModule_AddIntConstant(m, "SHA1", DIGEST_SHA1) < 0 ||
              PyModule_AddIntConstant(m, "SHA256", DIGEST_SHA256) < 0)) {
        Py_CLEAR(m);
    }
    return m;
}
