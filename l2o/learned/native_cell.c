/* The coordinatewise LSTM cell in C: the whole cell, products included, in one blocked pass over
 * memory per direction (lstm_fused_*), and the ELU pre-layer of RP.
 *
 * Layout is feature-major: a (rows, N) array holds one feature per row, one coordinate per column.
 * Every function exists for float (suffix _f32) and double (_f64). tanh is computed as 2*sigmoid(2x)-1.
 * Built at first use by l2o/learned/native.py with the system C compiler; see that module.
 */
/* The elementwise loops at the width of the product tiles (below): gcc's tuning for Intel's AVX-512 CPUs
 * prefers 256-bit vectors for loops it vectorises itself, which left the gates' maths at half width. */
#if defined(__AVX512F__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("prefer-vector-width=512")
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* aligned_alloc wants a size that is a multiple of the alignment */
static void *alloc64(size_t bytes) { return aligned_alloc(64, (bytes + 63) & ~(size_t)63); }

static int thread_index(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* dst[0:n] = src[0:n] with non-temporal stores where the CPU has them and dst is 64-byte aligned: the
 * kept activations are read again only by the backward, after every other step of the unroll has run,
 * so an ordinary store would first read each line from memory (and push the next step's inputs out of
 * the cache) for nothing. The caller issues the fence (stream_fence) before the results are used. */
#define DEFINE_STREAM(T, SUFFIX, W, STORE, LOAD)                                                           \
static void stream_##SUFFIX(T *restrict dst, const T *restrict src, long n) {                              \
    long k = 0;                                                                                            \
    if (W > 0 && ((size_t)dst & 63) == 0 && ((size_t)src & 63) == 0)                                       \
        for (; k + W <= n; k += W) STORE(dst + k, LOAD(src + k));                                          \
    for (; k < n; ++k) dst[k] = src[k];                                                                    \
}
#if defined(__AVX512F__)
DEFINE_STREAM(float, f32, 16, _mm512_stream_ps, _mm512_load_ps)
DEFINE_STREAM(double, f64, 8, _mm512_stream_pd, _mm512_load_pd)
#elif defined(__AVX__)
DEFINE_STREAM(float, f32, 8, _mm256_stream_ps, _mm256_load_ps)
DEFINE_STREAM(double, f64, 4, _mm256_stream_pd, _mm256_load_pd)
#elif defined(__SSE2__)
DEFINE_STREAM(float, f32, 4, _mm_stream_ps, _mm_load_ps)
DEFINE_STREAM(double, f64, 2, _mm_stream_pd, _mm_load_pd)
#else
#define L2O_COPY(d, v) (*(d) = (v))
#define L2O_READ(s) (*(s))
DEFINE_STREAM(float, f32, 0, L2O_COPY, L2O_READ)
DEFINE_STREAM(double, f64, 0, L2O_COPY, L2O_READ)
#endif
static inline void stream_fence(void) {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

/* glibc ships SIMD variants of these (libmvec) but declares them only under -ffast-math; declaring
 * them here lets the loops vectorise while keeping IEEE semantics (NaN and inf propagate). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(L2O_NO_MVEC)
__attribute__((simd("notinbranch"))) float expf(float);
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) float expm1f(float);
__attribute__((simd("notinbranch"))) double expm1(double);
#endif

/* The float kernels' exp, inline so that it vectorises with the loop around it (a call of libmvec's
 * expf spills the loop's registers and costs several times more): e^x = 2^n e^r, n = round(x / ln 2),
 * r = x - n ln 2 in two parts (|r| <= ln 2 / 2), e^r by a degree-6 polynomial fitted by relative error,
 * 2^n put straight into the exponent bits. x is clamped to [-87, 88], where 2^n stays a normal float
 * (so -inf gives e^-87, about 1.6e-38, and +inf e^88, about 1.7e38: what the sigmoid needs), and a NaN
 * is put back at the end. Relative error at most EXPF_MAX_ERROR (l2o/learned/native.py) on [-87, 88],
 * tested against float64. */
static inline unsigned l2o_bits(float x) { unsigned u; memcpy(&u, &x, 4); return u; }
static inline float l2o_float(unsigned u) { float x; memcpy(&x, &u, 4); return x; }
static inline float l2o_expf(float x) {
    const float c = x < -87.0F ? -87.0F : x > 88.0F ? 88.0F : x;
    const float k = c * 1.44269504F + 12582912.0F;  /* 1.5 * 2^23: the sum's last bits are round(c / ln 2) */
    const float n = k - 12582912.0F;
    const float r = (c - n * 0.693145751953125F) - n * 1.42860682030941723e-6F;
    const float p = 1.0F + r * (1.0F + r * (0.4999999404F + r * (0.1666643173F + r * (0.04166800156F
                    + r * (8.374155499e-3F + r * 1.384365256e-3F)))));
    const float e = p * l2o_float((l2o_bits(k) - 0x4b400000U + 127U) << 23);
    return x != x ? x : e;
}
/* For the tests: y = the float exp above of x, n values (the vectorised loop the kernels use). */
void l2o_expf_array(const float *restrict x, float *restrict y, long n) {
    _Pragma("omp simd")
    for (long i = 0; i < n; ++i) y[i] = l2o_expf(x[i]);
}

#define DEFINE_KERNELS(T, SUFFIX, EXP, EXPM1)                                                              \
static inline T sig_##SUFFIX(T x) { return (T)1 / ((T)1 + EXP(-x)); }                                      \
                                                                                                           \
/* ELU pre-layer: z = elu(W x + b), W (R, K) row-major, x (K, N); keeps z. */                              \
void elu_linear_forward_##SUFFIX(const T *restrict w, const T *restrict b, const T *restrict x,            \
                                 T *restrict z, long R, long K, long N) {                                  \
    for (long r = 0; r < R; ++r) {                                                                         \
        T *zr = z + r * N;                                                                                 \
        _Pragma("omp simd")                                                                                \
        for (long n = 0; n < N; ++n) zr[n] = b[r];                                                         \
        for (long k = 0; k < K; ++k) {                                                                     \
            const T wk = w[r * K + k], *xk = x + k * N;                                                    \
            _Pragma("omp simd")                                                                            \
            for (long n = 0; n < N; ++n) zr[n] += wk * xk[n];                                              \
        }                                                                                                  \
        _Pragma("omp simd")                                                                                \
        for (long n = 0; n < N; ++n) zr[n] = zr[n] > (T)0 ? zr[n] : EXPM1(zr[n]);                          \
    }                                                                                                      \
}                                                                                                          \
                                                                                                           \
/* In place: dz *= elu'(pre-activation), written from the kept output z (z > 0: 1; else z + 1). */         \
void elu_backward_##SUFFIX(const T *restrict z, T *restrict dz, long count) {                              \
    _Pragma("omp simd")                                                                                    \
    for (long n = 0; n < count; ++n) dz[n] *= z[n] > (T)0 ? (T)1 : z[n] + (T)1;                            \
}

/* The whole cell in one pass over memory: matrix products and elementwise work per block of BN
 * coordinates, so that a block's gates, inputs and gradients stay in the L1/L2 cache between the two.
 * The products use register tiles of R rows x NV vectors (GCC/Clang vector extensions) sized to the
 * vector registers the compiler targets: 64-byte vectors and tiles of up to 8 rows with AVX-512's 32
 * registers; 32-byte vectors and tiles of up to 4 rows with AVX2's 16 (8-row tiles of 64-byte vectors
 * there spill most of their accumulators to the stack and run several times slower); 16-byte vectors
 * elsewhere. Columns past the end of a short last block are zero in the local buffers and never written
 * back.
 *
 *   lstm_fused_forward:  act = activations of w [x; h] + b, c_new, h_new        (x: I rows, h, c: H rows)
 *                        (act may be NULL where no backward follows). act holds the gates' activations
 *                        and tanh(c_new), laid out by blocks for the backward alone: block nb's (5 H, BN)
 *                        values at act + nb 5 H BN, so that each direction writes or reads them as one
 *                        run of memory rather than rows far apart (its length: lstm_act_length below)
 *   lstm_fused_backward: dx, dh_prev, dc_prev, and dw = dgates [x; h]^T, db = sum of dgates over
 *                        coordinates (dw and db are skipped when NULL)
 * Blocks are shared among `threads` OpenMP threads (torch's pool: the library binds to the libgomp torch
 * has loaded) in contiguous runs; each thread keeps its own weight and bias partial sums, added in
 * thread order at the end, so a result depends on the thread count only. */
#define NV 3
#define ACT_ROWS(H) (5 * (H))  /* kept per coordinate: the four gates' activations, then tanh(c_new) */
#if defined(__AVX512F__)
#define VBYTES 64   /* bytes of one vector */
#define TILE_MAX 8  /* rows of the largest product tile */
#define DWQ 4       /* columns of the weight-gradient tile */
#elif defined(__AVX__)
#define VBYTES 32
#define TILE_MAX 4
#define DWQ 2
#else
#define VBYTES 16
#define TILE_MAX 4
#define DWQ 2
#endif

/* Compilers fold the loads of b0..b2 into every multiply-add that uses them (24 loads per 24 FMAs
 * where 3 would do), which makes the tile bound by loads; an empty asm that claims to change them
 * keeps them in registers. */
#if defined(__GNUC__) && defined(__AVX512F__)
#define KEEP_IN_REGISTERS(a, b, c) __asm__("" : "+v"(a), "+v"(b), "+v"(c))
#else
#define KEEP_IN_REGISTERS(a, b, c) ((void)0)
#endif

/* One coordinate n of one hidden unit: forward from pre-activations (bias included) in the block
 * buffer, backward from the kept activations; the loops around them are in the functions below. */
#define FWD_CELL(T, SUFFIX) {                                                                              \
    T i = sig_##SUFFIX(pi[n]), f = sig_##SUFFIX(pf[n]), o = sig_##SUFFIX(po[n]);                           \
    T g = (T)2 * sig_##SUFFIX((T)2 * pg[n]) - (T)1;                                                        \
    T cc = f * cj[n] + i * g;                                                                              \
    T t = (T)2 * sig_##SUFFIX((T)2 * cc) - (T)1;                                                           \
    ai[n] = i; af[n] = f; ao[n] = o; ag[n] = g; at[n] = t;                                                 \
    cn[n] = cc; hj[n] = o * t;                                                                             \
}
#define BWD_CELL(T, SUFFIX) {                                                                              \
    T i = ai[n], f = af[n], o = ao[n], g = ag[n];                                                          \
    T t = at[n];                                                                                           \
    T dhv = dhj[n], dct = dcj[n] + dhv * o * ((T)1 - t * t);                                               \
    di[n] = dct * g * i * ((T)1 - i);                                                                      \
    df[n] = dct * cj[n] * f * ((T)1 - f);                                                                  \
    dO[n] = dhv * t * o * ((T)1 - o);                                                                      \
    dgg[n] = dct * i * ((T)1 - g * g);                                                                     \
    dcp[n] = dct * f;                                                                                      \
}

#define DEFINE_TILE(T, SUFFIX, R)                                                                          \
/* out[r][0:BN] = init[r] + sum_k a[r][k * ks] * blk[k][0:BN] for R rows; init may be NULL (zero). */      \
static void tile##R##_##SUFFIX(const T *const *a, long ks, const T *init, const T *restrict blk, long K,   \
                               T *const *out) {                                                            \
    typedef T V __attribute__((vector_size(VBYTES)));                                                      \
    enum { BN = NV * (int)(VBYTES / sizeof(T)) };                                                          \
    V acc[R][NV];                                                                                          \
    _Pragma("GCC unroll 8")                                                                                \
    for (int r = 0; r < R; ++r)                                                                            \
        for (int v = 0; v < NV; ++v) acc[r][v] = (V){0} + (init ? init[r] : (T)0);                         \
    for (long k = 0; k < K; ++k) {                                                                         \
        const V *bk = (const V *)(blk + k * BN);                                                           \
        V b0 = bk[0], b1 = bk[1], b2 = bk[2];                                                              \
        KEEP_IN_REGISTERS(b0, b1, b2);                                                                     \
        _Pragma("GCC unroll 8")                                                                            \
        for (int r = 0; r < R; ++r) {                                                                      \
            const V s = a[r][k * ks] - (V){0};  /* a broadcast (x - 0 is x, even for -0) */                \
            acc[r][0] += s * b0; acc[r][1] += s * b1; acc[r][2] += s * b2;                                 \
        }                                                                                                  \
    }                                                                                                      \
    _Pragma("GCC unroll 8")                                                                                \
    for (int r = 0; r < R; ++r)                                                                            \
        for (int v = 0; v < NV; ++v) ((V *)out[r])[v] = acc[r][v];                                         \
}

#define DEFINE_FUSED(T, SUFFIX)                                                                            \
DEFINE_TILE(T, SUFFIX, 8)                                                                                  \
DEFINE_TILE(T, SUFFIX, 4)                                                                                  \
DEFINE_TILE(T, SUFFIX, 1)                                                                                  \
                                                                                                           \
/* out (K, BN) = W^T blk for W (G, K) row-major and blk (G, BN): tiles of 8 rows, 4, then single rows. */  \
static void wt_times_##SUFFIX(const T *w, long K, long G, const T *blk, T *out) {                          \
    enum { BN = NV * (int)(VBYTES / sizeof(T)) };                                                          \
    const T *a[8];                                                                                         \
    T *o[8];                                                                                               \
    for (long r = 0; r < K; ) {                                                                            \
        const int R = K - r >= 8 && TILE_MAX >= 8 ? 8 : K - r >= 4 ? 4 : 1;                                \
        for (int q = 0; q < R; ++q) { a[q] = w + r + q; o[q] = out + (r + q) * BN; }                       \
        if (R == 8) tile8_##SUFFIX(a, K, 0, blk, G, o);                                                    \
        else if (R == 4) tile4_##SUFFIX(a, K, 0, blk, G, o);                                               \
        else tile1_##SUFFIX(a, K, 0, blk, G, o);                                                           \
        r += R;                                                                                            \
    }                                                                                                      \
}                                                                                                          \
                                                                                                           \
/* Copies columns [n0, n0 + m) of the rows of x (I, N) then h (H, N) into blk (I + H, BN), zero-padded. */ \
static void gather_##SUFFIX(const T *x, const T *h, long I, long H, long N, long n0, long m, T *blk) {     \
    enum { BN = NV * (int)(VBYTES / sizeof(T)) };                                                          \
    for (long k = 0; k < I + H; ++k) {                                                                     \
        const T *src = k < I ? x + k * N + n0 : h + (k - I) * N + n0;                                      \
        T *dst = blk + k * BN;                                                                             \
        _Pragma("omp simd")                                                                                \
        for (long n = 0; n < BN; ++n) dst[n] = n < m ? src[n] : (T)0;                                      \
    }                                                                                                      \
}                                                                                                          \
                                                                                                           \
/* The reverse: columns [0, m) of blk (I + H, BN) into columns [n0, n0 + m) of x (I, N) then h (H, N). */  \
static void scatter_##SUFFIX(const T *blk, long I, long H, long N, long n0, long m, T *x, T *h) {          \
    enum { BN = NV * (int)(VBYTES / sizeof(T)) };                                                          \
    for (long k = 0; k < I + H; ++k) {                                                                     \
        T *dst = k < I ? x + k * N + n0 : h + (k - I) * N + n0;                                            \
        const T *src = blk + k * BN;                                                                       \
        if (m == BN) { _Pragma("omp simd") for (long n = 0; n < BN; ++n) dst[n] = src[n]; }                \
        else for (long n = 0; n < m; ++n) dst[n] = src[n];                                                 \
    }                                                                                                      \
}                                                                                                          \
                                                                                                           \
/* Asks for columns [n0, n0 + BN) of `rows` rows of a (rows, N) array ahead of use: the rows of a block    \
 * are far apart in memory, too many streams for the hardware prefetcher to follow. */                     \
static inline void prefetch_##SUFFIX(const T *a, long rows, long N, long n0, int write) {                  \
    enum { BN = NV * (int)(VBYTES / sizeof(T)) };                                                          \
    if (!a || n0 >= N) return;                                                                             \
    for (long r = 0; r < rows; ++r) {                                                                      \
        const char *p = (const char *)(a + r * N + n0);                                                    \
        for (int off = 0; off < BN * (int)sizeof(T); off += 64) {                                          \
            if (write) __builtin_prefetch(p + off, 1); else __builtin_prefetch(p + off, 0);                \
        }                                                                                                  \
        if (write) __builtin_prefetch(p + BN * sizeof(T) - 1, 1); else __builtin_prefetch(p + BN * sizeof(T) - 1, 0); \
    }                                                                                                      \
}                                                                                                          \
                                                                                                           \
int lstm_fused_forward_##SUFFIX(const T *x, const T *h, const T *restrict c, const T *w, const T *b,       \
                                T *restrict act, T *restrict c_new, T *restrict h_new, long I, long H, long N, \
                                long threads) {                                                            \
    enum { BN = NV * (int)(VBYTES / sizeof(T)) };                                                          \
    const long K = I + H, G = 4 * H, A = ACT_ROWS(H), blocks = (N + BN - 1) / BN;                          \
    int failed = 0;                                                                                        \
    _Pragma("omp parallel num_threads(threads > 1 ? (int)threads : 1) reduction(|: failed)")               \
    {                                                                                                      \
    T *blk = alloc64((size_t)(K + A) * BN * sizeof(T));                                                   \
    failed |= !blk;                                                                                        \
    _Pragma("omp for schedule(static)")                                                                    \
    for (long nb = 0; nb < blocks; ++nb) {                                                                 \
        if (!blk) continue;                                                                                \
        const long n0 = nb * BN, m = N - n0 < BN ? N - n0 : BN;                                            \
        T *pre = blk + K * BN;  /* the activations overwrite them in place, then go to act */             \
        prefetch_##SUFFIX(x, I, N, n0 + BN, 0); prefetch_##SUFFIX(h, H, N, n0 + BN, 0);                    \
        prefetch_##SUFFIX(c, H, N, n0 + BN, 0);                                                            \
        gather_##SUFFIX(x, h, I, H, N, n0, m, blk);                                                        \
        const T *a[8], *init = 0;                                                                          \
        T bias[8], *o[8];                                                                                  \
        for (long j = 0; j < H; ) {  /* the four gates of one or two hidden units per tile */              \
            const int units = H - j >= 2 && TILE_MAX >= 8 ? 2 : 1;                                         \
            for (int q = 0; q < 4 * units; ++q) {                                                          \
                const long row = (q / units) * H + j + q % units;                                          \
                a[q] = w + row * K; bias[q] = b[row]; o[q] = pre + row * BN;                               \
            }                                                                                              \
            init = bias;                                                                                   \
            if (units == 2) tile8_##SUFFIX(a, 1, init, blk, K, o);                                         \
            else tile4_##SUFFIX(a, 1, init, blk, K, o);                                                    \
            j += units;                                                                                    \
        }                                                                                                  \
        for (long j = 0; j < H; ++j) {                                                                     \
            T *ai = pre + j * BN, *af = pre + (H + j) * BN, *ao = pre + (2 * H + j) * BN;                  \
            T *ag = pre + (3 * H + j) * BN, *at = pre + (4 * H + j) * BN;                                  \
            const T *pi = ai, *pf = af, *po = ao, *pg = ag, *cj = c + j * N + n0;                          \
            T *cn = c_new + j * N + n0, *hj = h_new + j * N + n0;                                          \
            if (m == BN) { _Pragma("omp simd") for (long n = 0; n < BN; ++n) FWD_CELL(T, SUFFIX) }         \
            else { _Pragma("omp simd") for (long n = 0; n < m; ++n) FWD_CELL(T, SUFFIX) }                  \
        }                                                                                                  \
        if (act) stream_##SUFFIX(act + nb * A * BN, pre, A * BN);                                          \
    }                                                                                                      \
    stream_fence();                                                                                        \
    free(blk);                                                                                             \
    }                                                                                                      \
    return failed ? -1 : 0;                                                                                \
}                                                                                                          \
                                                                                                           \
int lstm_fused_backward_##SUFFIX(const T *x, const T *h, const T *restrict c, const T *restrict act,       \
                                 const T *w, const T *restrict dh,                                         \
                                 const T *restrict dc, T *restrict dx, T *restrict dh_prev,                \
                                 T *restrict dc_prev, T *restrict dw, T *restrict db, long I, long H, long N, \
                                 long threads) {                                                           \
    typedef T V __attribute__((vector_size(VBYTES)));                                                      \
    enum { BN = NV * (int)(VBYTES / sizeof(T)) };                                                          \
    const long K = I + H, G = 4 * H, A = ACT_ROWS(H);                                                      \
    const int nt = threads > 1 ? (int)threads : 1;                                                         \
    const long blocks = (N + BN - 1) / BN, S = G * K + G;  /* S: one thread's lane sums of dw, db */       \
    V *sums = alloc64((size_t)nt * S * sizeof(V));                                                         \
    if (!sums) return -1;                                                                                  \
    memset(sums, 0, (size_t)nt * S * sizeof(V));                                                           \
    int failed = 0;                                                                                        \
    _Pragma("omp parallel num_threads(nt) reduction(|: failed)")                                           \
    {                                                                                                      \
    /* local: dgates (G, BN), [x; h] (K, BN), dxh (K, BN), a zero row standing for a missing dh or dc */   \
    T *dg = alloc64((size_t)(G + 2 * K + 1) * BN * sizeof(T));                                             \
    T *blk = dg ? dg + G * BN : 0, *dxh = blk ? blk + K * BN : 0, *zero = dxh ? dxh + K * BN : 0;          \
    V *dwl = sums + (long)thread_index() * S, *dbl = dwl + G * K;                                          \
    failed |= !dg;                                                                                         \
    if (zero) memset(zero, 0, BN * sizeof(T));                                                             \
    _Pragma("omp for schedule(static)")                                                                    \
    for (long nb = 0; nb < blocks; ++nb) {                                                                 \
        if (!dg) continue;                                                                                 \
        const long n0 = nb * BN, m = N - n0 < BN ? N - n0 : BN;                                            \
        prefetch_##SUFFIX(c, H, N, n0 + BN, 0);                                                            \
        prefetch_##SUFFIX(dh, H, N, n0 + BN, 0);                                                           \
        prefetch_##SUFFIX(dc, H, N, n0 + BN, 0); prefetch_##SUFFIX(dc_prev, H, N, n0 + BN, 1);             \
        prefetch_##SUFFIX(dx, I, N, n0 + BN, 1); prefetch_##SUFFIX(dh_prev, H, N, n0 + BN, 1);             \
        if (dw) { prefetch_##SUFFIX(x, I, N, n0 + BN, 0); prefetch_##SUFFIX(h, H, N, n0 + BN, 0); }        \
        if (m < BN)  /* the last, short block: columns past m must read as zero */                         \
            for (long r = 0; r < G; ++r) memset(dg + r * BN + m, 0, (size_t)(BN - m) * sizeof(T));         \
        for (long j = 0; j < H; ++j) {                                                                     \
            const long o0 = j * N + n0;                                                                    \
            const T *ai = act + (nb * A + j) * BN, *af = ai + H * BN, *ao = ai + 2 * H * BN;               \
            const T *ag = ai + 3 * H * BN, *at = ai + 4 * H * BN, *cj = c + o0;                            \
            const T *dhj = dh ? dh + o0 : zero, *dcj = dc ? dc + o0 : zero;                                \
            T *di = dg + j * BN, *df = dg + (H + j) * BN, *dO = dg + (2 * H + j) * BN;                     \
            T *dgg = dg + (3 * H + j) * BN, *dcp = dc_prev + o0;                                           \
            if (m == BN) { _Pragma("omp simd") for (long n = 0; n < BN; ++n) BWD_CELL(T, SUFFIX) }         \
            else { _Pragma("omp simd") for (long n = 0; n < m; ++n) BWD_CELL(T, SUFFIX) }                  \
        }                                                                                                  \
        wt_times_##SUFFIX(w, K, G, dg, dxh);                                                               \
        scatter_##SUFFIX(dxh, I, H, N, n0, m, dx, dh_prev);                                                \
        if (dw) {                                                                                          \
            gather_##SUFFIX(x, h, I, H, N, n0, m, blk);                                                    \
            const V *gv = (const V *)dg, *xv = (const V *)blk;                                             \
            for (long r = 0; r < G; r += 4) {                                                              \
                long k = 0;                                                                                \
                for (; k + DWQ <= K; k += DWQ) {                                                           \
                    V s[4][DWQ];                                                                           \
                    _Pragma("GCC unroll 4")                                                                \
                    for (int p = 0; p < 4; ++p)                                                            \
                        for (int q = 0; q < DWQ; ++q) s[p][q] = dwl[(r + p) * K + k + q];                  \
                    for (int v = 0; v < NV; ++v) {                                                         \
                        _Pragma("GCC unroll 4")                                                            \
                        for (int p = 0; p < 4; ++p)                                                        \
                            for (int q = 0; q < DWQ; ++q) s[p][q] += gv[(r + p) * NV + v] * xv[(k + q) * NV + v]; \
                    }                                                                                      \
                    _Pragma("GCC unroll 4")                                                                \
                    for (int p = 0; p < 4; ++p)                                                            \
                        for (int q = 0; q < DWQ; ++q) dwl[(r + p) * K + k + q] = s[p][q];                  \
                }                                                                                          \
                for (; k < K; ++k)                                                                         \
                    for (int p = 0; p < 4; ++p)                                                            \
                        for (int v = 0; v < NV; ++v) dwl[(r + p) * K + k] += gv[(r + p) * NV + v] * xv[k * NV + v]; \
            }                                                                                              \
        }                                                                                                  \
        if (db)                                                                                            \
            for (long r = 0; r < G; ++r)                                                                   \
                for (int v = 0; v < NV; ++v) dbl[r] += ((const V *)dg)[r * NV + v];                        \
    }                                                                                                      \
    free(dg);                                                                                              \
    }                                                                                                      \
    if (failed) { free(sums); return -1; }                                                                 \
    for (long e = 0; e < (dw ? G * K : 0); ++e) {                                                          \
        T s = 0;                                                                                           \
        for (int t = 0; t < nt; ++t)                                                                       \
            for (int l = 0; l < (int)(VBYTES / sizeof(T)); ++l) s += sums[t * S + e][l];                   \
        dw[e] = s;                                                                                         \
    }                                                                                                      \
    for (long r = 0; r < (db ? G : 0); ++r) {                                                              \
        T s = 0;                                                                                           \
        for (int t = 0; t < nt; ++t)                                                                       \
            for (int l = 0; l < (int)(VBYTES / sizeof(T)); ++l) s += sums[t * S + G * K + r][l];           \
        db[r] = s;                                                                                         \
    }                                                                                                      \
    free(sums);                                                                                            \
    return 0;                                                                                              \
}

DEFINE_KERNELS(float, f32, l2o_expf, expm1f)
DEFINE_KERNELS(double, f64, exp, expm1)
DEFINE_FUSED(float, f32)
DEFINE_FUSED(double, f64)

/* The length in elements of the activations that lstm_fused_forward keeps for N coordinates. */
#define DEFINE_ACT_LENGTH(T, SUFFIX)                                                                       \
long lstm_act_length_##SUFFIX(long H, long N) {                                                            \
    const long bn = NV * (long)(VBYTES / sizeof(T));                                                       \
    return ACT_ROWS(H) * ((N + bn - 1) / bn) * bn;                                                         \
}
DEFINE_ACT_LENGTH(float, f32)
DEFINE_ACT_LENGTH(double, f64)
