/*
 * Guest for scripts/bench-wasm: a real program, big enough that compiling it matters.
 *
 * Reads all of stdin, then with zstd (built from the sources bundled in the `zstandard`
 * PyPI sdist, see benches/wasm.py): compresses it at a few levels and decompresses each
 * frame back, trains a dictionary on fixed-size chunks of it and round-trips every chunk
 * through that dictionary. Prints one JSON line; exits 1 if any round trip differs.
 *
 * The same stdin bytes must give the same line under any runtime: that is how the
 * benchmark checks that wove-worker and the independent runtime ran the same work.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zdict.h"
#include "zstd.h"

#define CHUNK 2048
#define MAX_CHUNKS 4096

static unsigned char *read_all(FILE *f, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    size_t got;
    if (!buf) return NULL;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            unsigned char *bigger = realloc(buf, cap * 2);
            if (!bigger) { free(buf); return NULL; }
            buf = bigger;
            cap *= 2;
        }
    }
    *len = n;
    return buf;
}

static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 1099511628211ULL; }
    return h;
}

static int fail(const char *what, size_t code) {
    printf("{\"ok\":false,\"error\":\"%s: %s\"}\n", what, ZSTD_isError(code) ? ZSTD_getErrorName(code) : "mismatch");
    return 1;
}

int main(void) {
    static const int levels[] = {1, 3, 9};
    size_t in_len = 0;
    unsigned char *in = read_all(stdin, &in_len);
    if (!in) return fail("read", 0);

    size_t bound = ZSTD_compressBound(in_len);
    unsigned char *frame = malloc(bound), *back = malloc(in_len + 1);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    if (!frame || !back || !cctx || !dctx) return fail("alloc", 0);

    size_t out_by_level[sizeof levels / sizeof levels[0]];
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        size_t out = ZSTD_compressCCtx(cctx, frame, bound, in, in_len, levels[i]);
        if (ZSTD_isError(out)) return fail("compress", out);
        size_t got = ZSTD_decompressDCtx(dctx, back, in_len + 1, frame, out);
        if (ZSTD_isError(got)) return fail("decompress", got);
        if (got != in_len || memcmp(back, in, in_len) != 0) return fail("roundtrip", 0);
        out_by_level[i] = out;
    }

    /* Dictionary: samples are the input cut into CHUNK-byte pieces. */
    size_t chunks = in_len / CHUNK;
    if (chunks > MAX_CHUNKS) chunks = MAX_CHUNKS;
    size_t dict_len = 0, dict_out = 0;
    if (chunks >= 16) {
        static size_t sizes[MAX_CHUNKS];
        for (size_t i = 0; i < chunks; i++) sizes[i] = CHUNK;
        size_t dict_cap = 16 * 1024;
        unsigned char *dict = malloc(dict_cap);
        if (!dict) return fail("alloc", 0);
        dict_len = ZDICT_trainFromBuffer(dict, dict_cap, in, sizes, (unsigned)chunks);
        if (ZDICT_isError(dict_len)) {
            printf("{\"ok\":false,\"error\":\"train: %s\"}\n", ZDICT_getErrorName(dict_len));
            return 1;
        }
        ZSTD_CDict *cdict = ZSTD_createCDict(dict, dict_len, 3);
        ZSTD_DDict *ddict = ZSTD_createDDict(dict, dict_len);
        if (!cdict || !ddict) return fail("alloc", 0);
        for (size_t i = 0; i < chunks; i++) {
            const unsigned char *src = in + i * CHUNK;
            size_t out = ZSTD_compress_usingCDict(cctx, frame, bound, src, CHUNK, cdict);
            if (ZSTD_isError(out)) return fail("dict compress", out);
            size_t got = ZSTD_decompress_usingDDict(dctx, back, in_len + 1, frame, out, ddict);
            if (ZSTD_isError(got)) return fail("dict decompress", got);
            if (got != CHUNK || memcmp(back, src, CHUNK) != 0) return fail("dict roundtrip", 0);
            dict_out += out;
        }
        ZSTD_freeCDict(cdict);
        ZSTD_freeDDict(ddict);
        free(dict);
    }

    printf("{\"in\":%zu,\"fnv1a\":\"%016llx\",\"out\":{", in_len, (unsigned long long)fnv1a(in, in_len));
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        printf("%s\"%d\":%zu", i ? "," : "", levels[i], out_by_level[i]);
    printf("},\"dict\":{\"bytes\":%zu,\"chunks\":%zu,\"out\":%zu},\"zstd\":\"%s\",\"ok\":true}\n",
           dict_len, chunks, dict_out, ZSTD_versionString());

    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
    free(frame);
    free(back);
    free(in);
    return 0;
}
