/* Elementwise parts of the coordinatewise LSTM, fused into single passes over memory.
 *
 * Layout is feature-major: a (rows, N) array holds one feature per row, one coordinate per column.
 * Every function exists for float (suffix _f32) and double (_f64). tanh is computed as 2*sigmoid(2x)-1.
 * Built at first use by l2o/learned/native.py with the system C compiler; see that module.
 */
#include <math.h>

/* glibc ships SIMD variants of these (libmvec) but declares them only under -ffast-math; declaring
 * them here lets the loops vectorise while keeping IEEE semantics (NaN and inf propagate). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(L2O_NO_MVEC)
__attribute__((simd("notinbranch"))) float expf(float);
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) float expm1f(float);
__attribute__((simd("notinbranch"))) double expm1(double);
#endif

#define DEFINE_KERNELS(T, SUFFIX, EXP, EXPM1)                                                              \
static inline T sig_##SUFFIX(T x) { return (T)1 / ((T)1 + EXP(-x)); }                                      \
                                                                                                           \
/* act: (4H, N) gate pre-activations [i; f; o; g] without bias in, activations out; b (4H,) the bias.   \
 * Writes c_new and h_new. */                                                                              \
void lstm_forward_##SUFFIX(T *restrict act, const T *restrict b, const T *restrict c, T *restrict c_new,   \
                           T *restrict h_new, long H, long N) {                                           \
    for (long j = 0; j < H; ++j) {                                                                         \
        T *ai = act + j * N, *af = act + (H + j) * N, *ao = act + (2 * H + j) * N, *ag = act + (3 * H + j) * N; \
        const T bi = b[j], bf = b[H + j], bo = b[2 * H + j], bg = b[3 * H + j];                            \
        const T *cj = c + j * N;                                                                           \
        T *cn = c_new + j * N, *hj = h_new + j * N;                                                        \
        _Pragma("omp simd")                                                                                \
        for (long n = 0; n < N; ++n) {                                                                     \
            T i = sig_##SUFFIX(ai[n] + bi), f = sig_##SUFFIX(af[n] + bf), o = sig_##SUFFIX(ao[n] + bo);    \
            T g = (T)2 * sig_##SUFFIX((T)2 * (ag[n] + bg)) - (T)1;                                         \
            T cc = f * cj[n] + i * g;                                                                      \
            T t = (T)2 * sig_##SUFFIX((T)2 * cc) - (T)1;                                                   \
            ai[n] = i; af[n] = f; ao[n] = o; ag[n] = g;                                                    \
            cn[n] = cc; hj[n] = o * t;                                                                     \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
                                                                                                           \
/* Gate gradients (4H, N) and the gradient of the previous cell state; dh or dc may be NULL (zero).        \
 * tanh(c_new) is recomputed from c_new rather than kept, to save memory traffic. */                       \
void lstm_backward_##SUFFIX(const T *restrict act, const T *restrict c, const T *restrict c_new,          \
                            const T *restrict dh, const T *restrict dc, T *restrict dgates,               \
                            T *restrict dc_prev, long H, long N) {                                         \
    for (long j = 0; j < H; ++j) {                                                                         \
        const T *ai = act + j * N, *af = act + (H + j) * N, *ao = act + (2 * H + j) * N;                   \
        const T *ag = act + (3 * H + j) * N, *cj = c + j * N, *cn = c_new + j * N;                         \
        const T *dhj = dh ? dh + j * N : 0, *dcj = dc ? dc + j * N : 0;                                    \
        T *di = dgates + j * N, *df = dgates + (H + j) * N, *dO = dgates + (2 * H + j) * N;                \
        T *dg = dgates + (3 * H + j) * N, *dcp = dc_prev + j * N;                                          \
        _Pragma("omp simd")                                                                                \
        for (long n = 0; n < N; ++n) {                                                                     \
            T i = ai[n], f = af[n], o = ao[n], g = ag[n];                                                  \
            T t = (T)2 * sig_##SUFFIX((T)2 * cn[n]) - (T)1;                                                \
            T dhv = dhj ? dhj[n] : (T)0;                                                                   \
            T dct = (dcj ? dcj[n] : (T)0) + dhv * o * ((T)1 - t * t);                                      \
            di[n] = dct * g * i * ((T)1 - i);                                                              \
            df[n] = dct * cj[n] * f * ((T)1 - f);                                                          \
            dO[n] = dhv * t * o * ((T)1 - o);                                                              \
            dg[n] = dct * i * ((T)1 - g * g);                                                              \
            dcp[n] = dct * f;                                                                              \
        }                                                                                                  \
    }                                                                                                      \
}                                                                                                          \
                                                                                                           \
/* ELU pre-layer: z = elu(W x + b), W (R, K) row-major, x (K, N); keeps z. */                              \
void elu_linear_forward_##SUFFIX(const T *restrict w, const T *restrict b, const T *restrict x,           \
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
void elu_backward_##SUFFIX(const T *restrict z, T *restrict dz, long count) {                               \
    _Pragma("omp simd")                                                                                    \
    for (long n = 0; n < count; ++n) dz[n] *= z[n] > (T)0 ? (T)1 : z[n] + (T)1;                             \
}

DEFINE_KERNELS(float, f32, expf, expm1f)
DEFINE_KERNELS(double, f64, exp, expm1)
