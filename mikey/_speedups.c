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
 *   parse_setup(classes, enums, lengths, sp_cache, sp_encoded, ntp_2000, max_payloads,
 *               max_message) -> None
 *   parse_message(data) -> Message | None
 *       The common case of mikey.codec.parse_message, done in one pass: a strictly valid
 *       message of the payloads the PSK, PK and RSA-R exchanges send (header with an SRTP-ID
 *       map; T, RAND, ID, SP, KEMAC, V, CERT, CHASH, PKE, SIGN), built into the very objects
 *       the Python parser builds (same classes, stored through the same slot descriptors).
 *       Anything else returns None and the Python parser decides: any other payload, code
 *       point or map, a NULL-encrypted KEMAC, anything that needs a leniency, an SP parameter
 *       block the Python parser has not seen and memoised yet, and every malformed message.
 *       So this code never produces an error for its input; it reads it through one
 *       bounds-checked cursor, and tests/mikey/test_speedups.py checks it against the Python
 *       parser on valid, mutated and random messages.
 *   encode_message(message) -> bytes | None
 *       Message.encode for the messages parse_message builds (the same classes, exactly; an
 *       SP's parameter block from the Python encoder's memo), byte for byte what the Python
 *       encoder writes. Anything else, and any field out of range, returns None and the Python
 *       encoder decides (and names the error).
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

/* ---- parse_message: the common strict case of mikey.codec's parser ---------------------- */

enum {  /* classes, in parse_setup's order */
    C_MESSAGE, C_HEADER, C_SRTP_ID, C_T, C_RAND, C_ID, C_SP, C_KEMAC, C_V, C_CERT, C_SIGN,
    C_PKE, C_CHASH, N_CLASSES
};
enum {  /* code point tables, in parse_setup's order */
    E_DATA_TYPE, E_PRF, E_MAP_TYPE, E_TS_TYPE, E_ID_TYPE, E_PROT, E_ENCR, E_MAC, E_CERT_TYPE,
    E_SIGN_TYPE, E_PKE_CACHE, E_HASH, N_ENUMS
};
enum { L_TS, L_MAC, L_HASH, N_LENGTHS };  /* value lengths per code point */
enum {  /* payload types (RFC 3830 §6.1) */
    PT_LAST = 0, PT_KEMAC = 1, PT_PKE = 2, PT_SIGN = 4, PT_T = 5, PT_ID = 6, PT_CERT = 7,
    PT_CHASH = 8, PT_V = 9, PT_SP = 10, PT_RAND = 11
};
#define DATA_TYPE_PSK_INIT 0

static struct {
    int ready;
    PyTypeObject *cls[N_CLASSES];
    PyObject *slots[N_CLASSES];     /* tuple of member descriptors, in field order */
    PyObject *member[N_ENUMS][256]; /* code point -> enum member (borrowed from the tuple) */
    int length[N_LENGTHS][256];     /* code point -> value length, -1 unknown */
    PyObject *sp_cache;             /* mikey.codec._SP_BODY_CACHE: (prot, body) -> params */
    PyObject *sp_encoded;           /* mikey.codec._SP_ENCODED: id(params) -> (params, body) */
    unsigned char ntp_2000[4];
    Py_ssize_t max_payloads;        /* mikey.codec.MAX_PAYLOADS */
    Py_ssize_t max_message;         /* mikey.codec.MAX_MESSAGE_SIZE (at most the buffer's size) */
    PyObject *keep;                 /* owns everything above */
} P;

static PyObject *build(int c, PyObject **values, Py_ssize_t n) {
    /* A new instance of class c with its n fields stored through their descriptors, as the
     * fast_init __init__ does; the values are borrowed. */
    PyTypeObject *tp = P.cls[c];
    PyObject *obj, *d;
    Py_ssize_t i;

    if (PyTuple_GET_SIZE(P.slots[c]) != n) {
        PyErr_SetString(PyExc_SystemError, "parse_message: field count mismatch");
        return NULL;
    }
    obj = tp->tp_alloc(tp, 0);
    if (!obj) return NULL;
    for (i = 0; i < n; i++) {
        d = PyTuple_GET_ITEM(P.slots[c], i);
        if (Py_TYPE(d)->tp_descr_set(d, obj, values[i]) < 0) {
            Py_DECREF(obj);
            return NULL;
        }
    }
    return obj;
}

typedef struct {
    const unsigned char *p;
    Py_ssize_t pos, end;
} cursor;

/* Each read checks the bytes are there; a short read means "not the common case". */
static int take_u8(cursor *c, unsigned *v) {
    if (c->end - c->pos < 1) return 0;
    *v = c->p[c->pos++];
    return 1;
}
static int take_u16(cursor *c, unsigned *v) {
    if (c->end - c->pos < 2) return 0;
    *v = ((unsigned)c->p[c->pos] << 8) | c->p[c->pos + 1];
    c->pos += 2;
    return 1;
}
static int take_u32(cursor *c, unsigned long *v) {
    if (c->end - c->pos < 4) return 0;
    *v = ((unsigned long)c->p[c->pos] << 24) | ((unsigned long)c->p[c->pos + 1] << 16) |
         ((unsigned long)c->p[c->pos + 2] << 8) | c->p[c->pos + 3];
    c->pos += 4;
    return 1;
}
/* 1: *out is a new bytes object of the next n bytes; 0: not there; -1: error set. */
static int take_bytes(cursor *c, Py_ssize_t n, PyObject **out) {
    if (n < 0 || c->end - c->pos < n) return 0;
    *out = PyBytes_FromStringAndSize((const char *)c->p + c->pos, n);
    if (!*out) return -1;
    c->pos += n;
    return 1;
}

/* A payload of the form next, type byte (an enum of table e), value: of the type's length from
 * length table l, or (l < 0) of a 16-bit length given first; built as class cls(member, value).
 * *type_byte gets the type. 1 = parsed, 0 = not the common case, -1 = error set. */
static int parse_typed(cursor *c, unsigned *next, int e, int l, int cls, PyObject **out,
                       unsigned *type_byte) {
    unsigned a, n;
    PyObject *member, *data, *vals[2];
    int r;

    if (!take_u8(c, next) || !take_u8(c, &a)) return 0;
    member = P.member[e][a];
    if (!member) return 0;
    if (l >= 0) {
        if (P.length[l][a] < 0) return 0;
        n = (unsigned)P.length[l][a];
    } else if (!take_u16(c, &n)) {
        return 0;
    }
    if ((r = take_bytes(c, n, &data)) <= 0) return r;
    vals[0] = member;
    vals[1] = data;
    *out = build(cls, vals, 2);
    Py_DECREF(data);
    *type_byte = a;
    return *out ? 1 : -1;
}

/* Parse one payload of type t into *out (a new reference) and its next payload type.
 * 1 = parsed, 0 = not the common case, -1 = error set. */
static int parse_payload(cursor *c, unsigned t, PyObject **out, unsigned *next, int *rand_seen) {
    unsigned a, b, n;
    PyObject *m1, *m2, *data = NULL, *data2 = NULL, *key, *params, *vals[5];
    int r;

    *out = NULL;
    switch (t) {
    case PT_T:  /* next, TS type, value of its type's length (RFC 3830 §6.6) */
        r = parse_typed(c, next, E_TS_TYPE, L_TS, C_T, out, &a);
        /* NTP-UTC / NTP before 2000 needs the NON_NTP_TIMESTAMP leniency (mikey.codec._p_t) */
        if (r == 1 && (a == 0 || a == 1) && memcmp(c->p + c->pos - 8, P.ntp_2000, 4) < 0) {
            Py_CLEAR(*out);
            return 0;
        }
        return r;
    case PT_RAND:  /* next, length, RAND (§6.11) */
        if (!take_u8(c, next) || !take_u8(c, &n) || n == 0) return 0;
        if ((r = take_bytes(c, n, &data)) <= 0) return r;
        vals[0] = data;
        *out = build(C_RAND, vals, 1);
        *rand_seen = 1;
        break;
    case PT_ID:  /* next, ID type, length, ID (§6.7) */
        return parse_typed(c, next, E_ID_TYPE, -1, C_ID, out, &a);
    case PT_SP: {  /* next, policy no, prot type, length, parameters (§6.10) */
        unsigned policy_no;
        PyObject *policy;
        if (!take_u8(c, next) || !take_u8(c, &policy_no) || !take_u8(c, &a) ||
            !take_u16(c, &n))
            return 0;
        m1 = P.member[E_PROT][a];
        if (!m1) return 0;
        if ((r = take_bytes(c, n, &data)) <= 0) return r;
        key = PyTuple_Pack(2, m1, data);
        Py_DECREF(data);
        if (!key) return -1;
        params = PyDict_GetItemWithError(P.sp_cache, key);  /* borrowed */
        Py_DECREF(key);
        if (!params) return PyErr_Occurred() ? -1 : 0;  /* not memoised: Python parses it */
        Py_INCREF(params);
        policy = PyLong_FromUnsignedLong(policy_no);
        if (!policy) {
            Py_DECREF(params);
            return -1;
        }
        vals[0] = policy; vals[1] = m1; vals[2] = params;
        *out = build(C_SP, vals, 3);
        Py_DECREF(policy);
        Py_DECREF(params);
        return *out ? 1 : -1;
    }
    case PT_KEMAC:  /* next, encr alg, length, encr data, MAC alg, MAC (§6.2) */
        if (!take_u8(c, next) || !take_u8(c, &a) || !take_u16(c, &n)) return 0;
        m1 = P.member[E_ENCR][a];
        if (!m1 || a == 0) return 0;  /* NULL encryption: the Python parser decodes the keys */
        if ((r = take_bytes(c, n, &data)) <= 0) return r;
        if (!take_u8(c, &b) || !(m2 = P.member[E_MAC][b]) || P.length[L_MAC][b] < 0) {
            Py_DECREF(data);
            return 0;
        }
        if ((r = take_bytes(c, P.length[L_MAC][b], &data2)) <= 0) {
            Py_DECREF(data);
            return r;
        }
        vals[0] = m1; vals[1] = data; vals[2] = m2; vals[3] = data2; vals[4] = Py_None;
        *out = build(C_KEMAC, vals, 5);
        break;
    case PT_V:  /* next, auth alg, MAC of its length (§6.9) */
        return parse_typed(c, next, E_MAC, L_MAC, C_V, out, &a);
    case PT_CERT:  /* next, cert type, length, certificate (§6.7) */
        return parse_typed(c, next, E_CERT_TYPE, -1, C_CERT, out, &a);
    case PT_CHASH:  /* next, hash func, hash of its length (§6.8) */
        return parse_typed(c, next, E_HASH, L_HASH, C_CHASH, out, &a);
    case PT_PKE:  /* next, C (2 bits) and length (14 bits), envelope (§6.3) */
        if (!take_u8(c, next) || !take_u16(c, &a)) return 0;
        m1 = P.member[E_PKE_CACHE][a >> 14];
        if (!m1) return 0;
        if ((r = take_bytes(c, a & 0x3FFF, &data)) <= 0) return r;
        vals[0] = m1; vals[1] = data;
        *out = build(C_PKE, vals, 2);
        break;
    case PT_SIGN:  /* S type (4 bits) and length (12 bits), signature; always last (§6.5) */
        if (!take_u16(c, &a)) return 0;
        m1 = P.member[E_SIGN_TYPE][a >> 12];
        if (!m1) return 0;
        if ((r = take_bytes(c, a & 0x0FFF, &data)) <= 0) return r;
        vals[0] = m1; vals[1] = data;
        *out = build(C_SIGN, vals, 2);
        *next = PT_LAST;
        break;
    default:
        return 0;
    }
    Py_XDECREF(data);
    Py_XDECREF(data2);
    return *out ? 1 : -1;
}

static PyObject *speedups_parse_message(PyObject *self, PyObject *arg) {
    cursor c;
    unsigned version, dt, vp, count, map_type, next, i, policy_no;
    unsigned long csb_id, ssrc, roc;
    int rand_seen = 0, r;
    PyObject *entries = NULL, *payloads = NULL, *header = NULL, *msg = NULL, *obj = NULL;
    PyObject *vals[10], *csb = NULL, *version_obj = NULL, *empty = NULL, *lenis = NULL;
    PyObject *zero = NULL;
    PyObject *e_vals[3];

    if (!PyBytes_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "parse_message(data: bytes)");
        return NULL;
    }
    if (!P.ready) Py_RETURN_NONE;
    c.p = (const unsigned char *)PyBytes_AS_STRING(arg);
    c.pos = 0;
    c.end = PyBytes_GET_SIZE(arg);

    /* Common header (§6.1): version 1, a known data type and PRF, an SRTP-ID map. */
    if (!take_u8(&c, &version) || version != 1 || !take_u8(&c, &dt) || !take_u8(&c, &next) ||
        !take_u8(&c, &vp) || !take_u32(&c, &csb_id) || !take_u8(&c, &count) ||
        !take_u8(&c, &map_type) || map_type != 0 || !P.member[E_DATA_TYPE][dt] ||
        !P.member[E_PRF][vp & 0x7F] || !P.member[E_MAP_TYPE][0] ||
        c.end - c.pos < 9 * (Py_ssize_t)count)
        Py_RETURN_NONE;
    entries = PyTuple_New(count);
    if (!entries) return NULL;
    for (i = 0; i < count; i++) {
        take_u8(&c, &policy_no);  /* the 9 * count bytes are there (checked above) */
        take_u32(&c, &ssrc);
        take_u32(&c, &roc);
        e_vals[0] = PyLong_FromUnsignedLong(policy_no);
        e_vals[1] = PyLong_FromUnsignedLong(ssrc);
        e_vals[2] = PyLong_FromUnsignedLong(roc);
        obj = (e_vals[0] && e_vals[1] && e_vals[2]) ? build(C_SRTP_ID, e_vals, 3) : NULL;
        Py_XDECREF(e_vals[0]);
        Py_XDECREF(e_vals[1]);
        Py_XDECREF(e_vals[2]);
        if (!obj) goto error;
        PyTuple_SET_ITEM(entries, i, obj);
    }
    csb = PyLong_FromUnsignedLong(csb_id);
    version_obj = PyLong_FromLong(1);
    empty = PyBytes_FromStringAndSize(NULL, 0);
    zero = PyLong_FromLong(0);
    if (!csb || !version_obj || !empty || !zero) goto error;
    /* Header(data_type, csb_id, cs_map, cs_map_type, v, prf, version, raw_map_info,
     *        map_padding, raw_cs_count) */
    vals[0] = P.member[E_DATA_TYPE][dt];
    vals[1] = csb;
    vals[2] = entries;
    vals[3] = P.member[E_MAP_TYPE][0];
    vals[4] = (vp & 0x80) ? Py_True : Py_False;
    vals[5] = P.member[E_PRF][vp & 0x7F];
    vals[6] = version_obj;
    vals[7] = empty;
    vals[8] = empty;
    vals[9] = zero;
    header = build(C_HEADER, vals, 10);
    if (!header) goto error;

    payloads = PyList_New(0);
    if (!payloads) goto error;
    while (next != PT_LAST) {
        if (PyList_GET_SIZE(payloads) >= P.max_payloads || c.pos >= c.end) goto fallback;
        r = parse_payload(&c, next, &obj, &next, &rand_seen);
        if (r < 0) goto error;
        if (r == 0) goto fallback;
        r = PyList_Append(payloads, obj);
        Py_DECREF(obj);
        if (r < 0) goto error;
    }
    /* Nothing after the last payload; a PSK I_MESSAGE carries RAND (§3.1). */
    if (c.pos != c.end || (dt == DATA_TYPE_PSK_INIT && !rand_seen)) goto fallback;
    obj = PyList_AsTuple(payloads);
    if (!obj) goto error;
    lenis = PyTuple_New(0);
    if (!lenis) {
        Py_DECREF(obj);
        goto error;
    }
    vals[0] = header; vals[1] = obj; vals[2] = empty; vals[3] = lenis;
    msg = build(C_MESSAGE, vals, 4);
    Py_DECREF(obj);
    Py_DECREF(lenis);
    goto done;
fallback:
    msg = Py_None;
    Py_INCREF(msg);
    goto done;
error:
    msg = NULL;
done:
    Py_XDECREF(entries);
    Py_XDECREF(payloads);
    Py_XDECREF(header);
    Py_XDECREF(csb);
    Py_XDECREF(version_obj);
    Py_XDECREF(empty);
    Py_XDECREF(zero);
    return msg;
}

/* ---- encode_message: Message.encode for the same classes -------------------------------- */

#define MAX_MESSAGE 65535  /* the 16-bit lengths of RFC 3830 never need more */
static unsigned char ebuf[MAX_MESSAGE];  /* under the GIL; nothing below runs Python code */

typedef struct {
    Py_ssize_t n;
} out_buf;

/* 1 = written, 0 = not the common case (too long). */
static int put(out_buf *o, const void *data, Py_ssize_t n) {
    if (n < 0 || P.max_message - o->n < n) return 0;
    memcpy(ebuf + o->n, data, (size_t)n);
    o->n += n;
    return 1;
}
static int put_u8(out_buf *o, long v) {
    unsigned char b = (unsigned char)v;
    return put(o, &b, 1);
}
static int put_u16(out_buf *o, long v) {
    unsigned char b[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    return put(o, b, 2);
}
static int put_u32(out_buf *o, long long v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return put(o, b, 4);
}

/* Field i of obj (an instance of class c) as a new reference; NULL = unset (error cleared). */
static PyObject *field(int c, PyObject *obj, int i) {
    PyObject *d = PyTuple_GET_ITEM(P.slots[c], i);
    PyObject *v = Py_TYPE(d)->tp_descr_get(d, obj, (PyObject *)P.cls[c]);
    if (!v) PyErr_Clear();
    return v;
}
/* An int field in lo..hi: 1, else 0 (unset, not an int, out of range). */
static int field_int(int c, PyObject *obj, int i, long long lo, long long hi, long long *out) {
    PyObject *v = field(c, obj, i);
    long long x;
    if (!v) return 0;
    if (!PyLong_Check(v)) {
        Py_DECREF(v);
        return 0;
    }
    x = PyLong_AsLongLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (x < lo || x > hi) return 0;
    *out = x;
    return 1;
}
/* A bytes field (exactly bytes): a new reference, or NULL. */
static PyObject *field_bytes(int c, PyObject *obj, int i) {
    PyObject *v = field(c, obj, i);
    if (v && !PyBytes_CheckExact(v)) Py_CLEAR(v);
    return v;
}

static int payload_type(PyObject *p) {
    PyTypeObject *t = Py_TYPE(p);
    if (t == P.cls[C_T]) return PT_T;
    if (t == P.cls[C_RAND]) return PT_RAND;
    if (t == P.cls[C_ID]) return PT_ID;
    if (t == P.cls[C_SP]) return PT_SP;
    if (t == P.cls[C_KEMAC]) return PT_KEMAC;
    if (t == P.cls[C_V]) return PT_V;
    if (t == P.cls[C_CERT]) return PT_CERT;
    if (t == P.cls[C_SIGN]) return PT_SIGN;
    if (t == P.cls[C_PKE]) return PT_PKE;
    if (t == P.cls[C_CHASH]) return PT_CHASH;
    return -1;
}

/* A payload of the form next, type byte, value (see parse_typed): field 0 the type, field 1 the
 * value, of the type's length from table l, or (l < 0) up to 0xFFFF bytes with a 16-bit length
 * first. 1 = written, 0 = not the common case. */
static int encode_typed(out_buf *o, PyObject *p, int cls, int l, int next) {
    long long a;
    PyObject *data;
    Py_ssize_t n;
    int ok;

    if (!field_int(cls, p, 0, 0, 255, &a) || (l >= 0 && P.length[l][a] < 0)) return 0;
    if (!(data = field_bytes(cls, p, 1))) return 0;
    n = PyBytes_GET_SIZE(data);
    ok = (l >= 0 ? n == P.length[l][a] : n <= 0xFFFF) && put_u8(o, next) && put_u8(o, a) &&
         (l >= 0 || put_u16(o, n)) && put(o, PyBytes_AS_STRING(data), n);
    Py_DECREF(data);
    return ok;
}

/* Payload p of type t followed by payload type next: 1 = written, 0 = not the common case. */
static int encode_payload(out_buf *o, PyObject *p, int t, int next) {
    long long a, b;
    PyObject *data = NULL, *data2 = NULL, *params = NULL, *key = NULL, *hit;
    Py_ssize_t n;
    int ok = 0;

    switch (t) {
    case PT_T:  /* next, TS type, value of its type's length */
        return encode_typed(o, p, C_T, L_TS, next);
    case PT_RAND:  /* next, length 1..255, RAND */
        if (!(data = field_bytes(C_RAND, p, 0))) return 0;
        n = PyBytes_GET_SIZE(data);
        ok = n >= 1 && n <= 255 && put_u8(o, next) && put_u8(o, n) &&
             put(o, PyBytes_AS_STRING(data), n);
        break;
    case PT_ID:  /* next, ID type, length, ID */
        return encode_typed(o, p, C_ID, -1, next);
    case PT_SP:  /* next, policy no, prot type, length, the memoised parameter block */
        if (!field_int(C_SP, p, 0, 0, 255, &a) || !field_int(C_SP, p, 1, 0, 255, &b)) return 0;
        if (!(params = field(C_SP, p, 2))) return 0;
        key = PyLong_FromVoidPtr(params);
        if (!key) {
            Py_DECREF(params);
            return -1;
        }
        hit = PyDict_GetItemWithError(P.sp_encoded, key);  /* borrowed */
        Py_DECREF(key);
        if (!hit) {
            Py_DECREF(params);
            return PyErr_Occurred() ? -1 : 0;
        }
        ok = PyTuple_CheckExact(hit) && PyTuple_GET_SIZE(hit) == 2 &&
             PyTuple_GET_ITEM(hit, 0) == params && PyBytes_CheckExact(PyTuple_GET_ITEM(hit, 1));
        if (ok) {
            data = PyTuple_GET_ITEM(hit, 1);
            Py_INCREF(data);
            n = PyBytes_GET_SIZE(data);
            ok = n <= 0xFFFF && put_u8(o, next) && put_u8(o, a) && put_u8(o, b) &&
                 put_u16(o, n) && put(o, PyBytes_AS_STRING(data), n);
        }
        Py_DECREF(params);
        break;
    case PT_KEMAC:  /* next, encr alg, length, encr data, MAC alg, MAC of its length */
        if (!field_int(C_KEMAC, p, 0, 0, 255, &a) || !field_int(C_KEMAC, p, 2, 0, 255, &b) ||
            P.length[L_MAC][b] < 0)
            return 0;
        if (!(data = field_bytes(C_KEMAC, p, 1))) return 0;
        if (!(data2 = field_bytes(C_KEMAC, p, 3))) break;
        n = PyBytes_GET_SIZE(data);
        ok = n <= 0xFFFF && PyBytes_GET_SIZE(data2) == P.length[L_MAC][b] && put_u8(o, next) &&
             put_u8(o, a) && put_u16(o, n) && put(o, PyBytes_AS_STRING(data), n) &&
             put_u8(o, b) && put(o, PyBytes_AS_STRING(data2), PyBytes_GET_SIZE(data2));
        break;
    case PT_V:  /* next, auth alg, MAC of its length */
        return encode_typed(o, p, C_V, L_MAC, next);
    case PT_CERT:  /* next, cert type, length, certificate */
        return encode_typed(o, p, C_CERT, -1, next);
    case PT_CHASH:  /* next, hash func, hash of its length */
        return encode_typed(o, p, C_CHASH, L_HASH, next);
    case PT_PKE:  /* next, C (2 bits) and length (14 bits), envelope */
        if (!field_int(C_PKE, p, 0, 0, 3, &a) || !(data = field_bytes(C_PKE, p, 1))) return 0;
        n = PyBytes_GET_SIZE(data);
        ok = n <= 0x3FFF && put_u8(o, next) && put_u16(o, (a << 14) | n) &&
             put(o, PyBytes_AS_STRING(data), n);
        break;
    case PT_SIGN:  /* S type (4 bits) and length (12 bits), signature; the last payload */
        if (next != PT_LAST || !field_int(C_SIGN, p, 0, 0, 15, &a)) return 0;
        if (!(data = field_bytes(C_SIGN, p, 1))) return 0;
        n = PyBytes_GET_SIZE(data);
        ok = n <= 0x0FFF && put_u16(o, (a << 12) | n) && put(o, PyBytes_AS_STRING(data), n);
        break;
    default:
        return 0;
    }
    Py_XDECREF(data);
    Py_XDECREF(data2);
    return ok;
}

static int encode_header(out_buf *o, PyObject *h, int next) {
    long long data_type, csb_id, map_type, prf, version, policy_no, ssrc, roc;
    PyObject *v, *map, *e;
    Py_ssize_t i, count;
    int ok;

    if (!field_int(C_HEADER, h, 0, 0, 255, &data_type) ||
        !field_int(C_HEADER, h, 1, 0, 0xFFFFFFFFLL, &csb_id) ||
        !field_int(C_HEADER, h, 3, 0, 0, &map_type) ||  /* SRTP-ID */
        !field_int(C_HEADER, h, 5, 0, 0x7F, &prf) || !field_int(C_HEADER, h, 6, 0, 255, &version))
        return 0;
    if (!(v = field(C_HEADER, h, 4))) return 0;
    Py_DECREF(v);  /* a bool singleton: compared by identity below */
    if (v != Py_True && v != Py_False) return 0;
    if (!(map = field(C_HEADER, h, 2))) return 0;
    count = PyTuple_CheckExact(map) ? PyTuple_GET_SIZE(map) : -1;
    ok = count >= 0 && count <= 255 && put_u8(o, version) && put_u8(o, data_type) &&
         put_u8(o, next) && put_u8(o, (v == Py_True ? 0x80 : 0) | prf) && put_u32(o, csb_id) &&
         put_u8(o, count) && put_u8(o, map_type);
    for (i = 0; ok && i < count; i++) {
        e = PyTuple_GET_ITEM(map, i);
        ok = Py_TYPE(e) == P.cls[C_SRTP_ID] && field_int(C_SRTP_ID, e, 0, 0, 255, &policy_no) &&
             field_int(C_SRTP_ID, e, 1, 0, 0xFFFFFFFFLL, &ssrc) &&
             field_int(C_SRTP_ID, e, 2, 0, 0xFFFFFFFFLL, &roc) && put_u8(o, policy_no) &&
             put_u32(o, ssrc) && put_u32(o, roc);
    }
    Py_DECREF(map);
    return ok;
}

static PyObject *speedups_encode_message(PyObject *self, PyObject *msg) {
    out_buf o = {0};
    PyObject *header = NULL, *payloads = NULL, *trailing = NULL, *result = NULL;
    Py_ssize_t i, n;
    int t, next, r;

    if (!P.ready || Py_TYPE(msg) != P.cls[C_MESSAGE]) Py_RETURN_NONE;
    header = field(C_MESSAGE, msg, 0);
    payloads = field(C_MESSAGE, msg, 1);
    trailing = field_bytes(C_MESSAGE, msg, 2);
    if (!header || Py_TYPE(header) != P.cls[C_HEADER] || !payloads ||
        !PyTuple_CheckExact(payloads) || !trailing)
        goto fallback;
    n = PyTuple_GET_SIZE(payloads);
    t = n ? payload_type(PyTuple_GET_ITEM(payloads, 0)) : PT_LAST;
    if (t < 0 || !encode_header(&o, header, t)) goto fallback;
    for (i = 0; i < n; i++) {
        next = i + 1 < n ? payload_type(PyTuple_GET_ITEM(payloads, i + 1)) : PT_LAST;
        if (next < 0) goto fallback;
        r = encode_payload(&o, PyTuple_GET_ITEM(payloads, i), t, next);
        if (r < 0) goto done;
        if (r == 0) goto fallback;
        t = next;
    }
    if (!put(&o, PyBytes_AS_STRING(trailing), PyBytes_GET_SIZE(trailing))) goto fallback;
    result = PyBytes_FromStringAndSize((const char *)ebuf, o.n);
    goto done;
fallback:
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(header);
    Py_XDECREF(payloads);
    Py_XDECREF(trailing);
    return result;
}

static PyObject *speedups_parse_setup(PyObject *self, PyObject *args) {
    /* parse_setup(classes, enums, lengths, sp_cache, sp_encoded, ntp_2000, max_payloads,
     *             max_message):
     *   classes: N_CLASSES (class, descriptors) pairs; enums: N_ENUMS dicts {int: member};
     *   lengths: N_LENGTHS dicts {int: int}; the two SP memos: dicts; ntp_2000: 4 bytes;
     *   the codec's limits on payloads per message and message size. */
    PyObject *classes, *enums, *lengths, *sp_cache, *sp_encoded, *item, *key, *value;
    Py_buffer ntp;
    Py_ssize_t i, pos, max_payloads, max_message;
    long k, v;

    if (!PyArg_ParseTuple(args, "O!O!O!O!O!y*nn", &PyTuple_Type, &classes, &PyTuple_Type,
                          &enums, &PyTuple_Type, &lengths, &PyDict_Type, &sp_cache,
                          &PyDict_Type, &sp_encoded, &ntp, &max_payloads, &max_message))
        return NULL;
    P.ready = 0;
    if (PyTuple_GET_SIZE(classes) != N_CLASSES || PyTuple_GET_SIZE(enums) != N_ENUMS ||
        PyTuple_GET_SIZE(lengths) != N_LENGTHS || ntp.len != 4 || max_payloads < 0 ||
        max_message < 0 || max_message > MAX_MESSAGE) {
        PyBuffer_Release(&ntp);
        PyErr_SetString(PyExc_ValueError, "parse_setup: wrong table sizes or limits");
        return NULL;
    }
    memcpy(P.ntp_2000, ntp.buf, 4);
    P.max_payloads = max_payloads;
    P.max_message = max_message;
    PyBuffer_Release(&ntp);
    for (i = 0; i < N_CLASSES; i++) {
        item = PyTuple_GET_ITEM(classes, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
            !PyType_Check(PyTuple_GET_ITEM(item, 0)) ||
            !PyTuple_Check(PyTuple_GET_ITEM(item, 1))) {
            PyErr_SetString(PyExc_TypeError, "parse_setup: classes are (class, descriptors)");
            return NULL;
        }
        for (pos = 0; pos < PyTuple_GET_SIZE(PyTuple_GET_ITEM(item, 1)); pos++) {
            if (!Py_TYPE(PyTuple_GET_ITEM(PyTuple_GET_ITEM(item, 1), pos))->tp_descr_set) {
                PyErr_SetString(PyExc_TypeError, "parse_setup: not a data descriptor");
                return NULL;
            }
        }
        P.cls[i] = (PyTypeObject *)PyTuple_GET_ITEM(item, 0);
        P.slots[i] = PyTuple_GET_ITEM(item, 1);
    }
    for (i = 0; i < N_ENUMS; i++) {
        item = PyTuple_GET_ITEM(enums, i);
        if (!PyDict_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "parse_setup: enums are dicts");
            return NULL;
        }
        memset(P.member[i], 0, sizeof P.member[i]);
        pos = 0;
        while (PyDict_Next(item, &pos, &key, &value)) {
            k = PyLong_AsLong(key);
            if (k == -1 && PyErr_Occurred()) return NULL;
            if (k >= 0 && k < 256) P.member[i][k] = value;
        }
    }
    for (i = 0; i < N_LENGTHS; i++) {
        item = PyTuple_GET_ITEM(lengths, i);
        if (!PyDict_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "parse_setup: lengths are dicts");
            return NULL;
        }
        memset(P.length[i], 0xFF, sizeof P.length[i]);  /* -1: unknown */
        pos = 0;
        while (PyDict_Next(item, &pos, &key, &value)) {
            k = PyLong_AsLong(key);
            if (k == -1 && PyErr_Occurred()) return NULL;
            v = PyLong_AsLong(value);
            if (v == -1 && PyErr_Occurred()) return NULL;
            if (k >= 0 && k < 256 && v >= 0 && v <= 0xFFFF) P.length[i][k] = (int)v;
        }
    }
    P.sp_cache = sp_cache;
    P.sp_encoded = sp_encoded;
    Py_XSETREF(P.keep, PyTuple_Pack(5, classes, enums, lengths, sp_cache, sp_encoded));
    if (!P.keep) return NULL;
    P.ready = 1;
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
    {"parse_setup", speedups_parse_setup, METH_VARARGS,
     "The classes and tables parse_message and encode_message use (mikey.codec calls it)."},
    {"encode_message", speedups_encode_message, METH_O,
     "Message.encode for parse_message's classes; None for anything else."},
    {"parse_message", speedups_parse_message, METH_O,
     "The common strict case of mikey.codec.parse_message; None for anything else."},
    {NULL, NULL, 0, NULL},
};

static void speedups_free(void *module) {
    P.ready = 0;
    Py_CLEAR(P.keep);
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
