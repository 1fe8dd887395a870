// mla.cpp — see mla.h. Shapes follow the legend in tensor/kernels.h; qk = qk_nope + R, kvw = nope + v
// (one head's rows of kv_b_proj). Steps are numbered so the backward reads against the forward.
#include "nn/mla.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#include "nn/linear.h"
#include "tensor/backend.h"
#include "util/error.h"

namespace seek {

namespace {

constexpr int64_t kPrefillDecompress = 64;  // new tokens from which absorbed MLA decompresses K/V

struct Dims {
  int64_t N, D, H, C, R, nope, qk, vd, ql, kvw;
  int64_t n1;  // rows of the first query projection (q_a or q)
  int64_t lda;  // row of `a`: [first ; c_kv ; k_pe]
  Dims(const MlaSpec& s, int64_t rows)
      : N(rows), D(s.hidden), H(s.heads), C(s.kv_lora_rank), R(s.qk_rope_head_dim), nope(s.qk_nope_head_dim),
        qk(s.qk()), vd(s.v_head_dim), ql(s.q_lora_rank), kvw(nope + vd),
        n1(ql ? ql : H * qk), lda(n1 + C + R) {}
};

const Mat& first_projection(const MlaSpec& s, const MlaWeights& w) { return s.q_lora_rank ? w.q_a_proj : w.q_proj; }

// Rows [r0, r0 + n) of w, a view (formats with 2-D block scales, FP8, cannot be cut so).
Mat row_view(const Mat& w, int64_t r0, int64_t n) {
  SEEK_ASSERT(!weight_format(w.dtype).block_scales && r0 >= 0 && r0 + n <= w.rows);
  return {w.dtype, static_cast<const uint8_t*>(w.data) + r0 * row_bytes(w), n, w.cols};
}

// Absorbed decode of one segment (few new tokens): q̃_h = q_nope_h · W_UK_h beside q_pe, MQA over the
// latent rows (key dim C + R, value dim C), then W_UV_h per head. W_UK_h and W_UV_h are read in their
// stored format, not from the f32 copy (kv_b_f32): a decode step is bound by the bytes it reads, and a
// Q8_0 matrix is a quarter of the copy's. From kv_b_proj, q_nope_h · W_UK_h sums over its rows:
// weighted_rows (block formats: decoded and summed in one pass); from the split layout's k_b_h = W_UK_hᵀ
// it is a product per head (matmul_many, as llama.cpp computes it). The MQA is mqa_decode, 16 heads to a
// vector and the latent rows split between the threads (through two sgemm calls it took 1.5-2x longer
// per token at 576 tokens of context). W_UV_h's rows (of v_b, or of kv_b_proj) go to matmul_many as
// they are stored (its int8 path for block formats, rounding ctx to 8 bits as llama.cpp does). FP8's
// 2-D block scales cannot be cut into row views: its W_UV_h reads the copy.
void absorbed_decode(const Pass& p, const MlaSpec& s, const Dims& d, const float* q, int64_t ldq, const Segment& sg,
                     const MlaWeights& w, const float* latent, int64_t cap, float* out) {
  Workspace::Frame frame(p.ws);
  const int64_t T = sg.T, CR = d.C + d.R;
  float* qcat = p.ws.alloc<float>(d.H * T * CR);  // [H, T, C + R]
  float* ctx = p.ws.alloc<float>(d.H * T * d.C);  // [H, T, C]
  float* scratch = p.ws.alloc<float>(mqa_decode_scratch(d.H, cap, CR, d.C));  // for the capacity: a decode never grows it
  MatmulJob* jobs = p.ws.alloc<MatmulJob>(d.H);
  if (w.k_b.data) {
    float* qn = p.ws.alloc<float>(d.H * T * d.nope);  // [H, T, nope]: each head's q_nope rows together
    for (int64_t h = 0; h < d.H; ++h) {
      for (int64_t t = 0; t < T; ++t)
        std::memcpy(qn + (h * T + t) * d.nope, q + t * ldq + h * d.qk, sizeof(float) * size_t(d.nope));
      new (jobs + h) MatmulJob{qcat + h * T * CR, qn + h * T * d.nope, row_view(w.k_b, h * d.C, d.C), T, nullptr, CR};
    }
    matmul_many(jobs, d.H);
  } else {
    parallel_for(d.H, T * d.C * d.nope, [&](int64_t h0, int64_t h1) {
      for (int64_t h = h0; h < h1; ++h)  // W_UK_h: kv_b_proj's rows [h·kvw, h·kvw + nope)
        weighted_rows(qcat + h * T * CR, CR, q + h * d.qk, ldq, w.kv_b_proj, h * d.kvw, d.nope, T);
    });
  }
  for (int64_t h = 0; h < d.H; ++h)
    for (int64_t t = 0; t < T; ++t)
      std::memcpy(qcat + (h * T + t) * CR + d.C, q + t * ldq + h * d.qk + d.nope, sizeof(float) * size_t(d.R));
  // New token t sees the latent rows up to its own position; its heads' rows are T·(C + R) apart.
  for (int64_t t = 0; t < T; ++t)
    mqa_decode(qcat + t * CR, T * CR, latent, CR, d.H, sg.pos0 + t + 1, CR, d.C, s.softmax_scale, ctx + t * d.C, T * d.C,
               scratch);
  if (w.v_b.data || !weight_format(w.kv_b_proj.dtype).block_scales) {
    for (int64_t h = 0; h < d.H; ++h) {
      const Mat Wuv = w.v_b.data ? row_view(w.v_b, h * d.vd, d.vd) : row_view(w.kv_b_proj, h * d.kvw + d.nope, d.vd);
      new (jobs + h) MatmulJob{out + h * d.vd, ctx + h * T * d.C, Wuv, T, nullptr, d.H * d.vd};
    }
    return matmul_many(jobs, d.H);
  }
  parallel_for(d.H, T * d.C * d.vd, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const float* Wuv = w.kv_b_f32 + (h * d.kvw + d.nope) * d.C;  // [v, C]
      gemm(false, true, T, d.vd, d.C, 1.f, ctx + h * T * d.C, d.C, Wuv, d.C, 0.f, out + h * d.vd, d.H * d.vd);
    }
  });
}

}  // namespace

void mla_forward(const Pass& p, const MlaSpec& s, const MlaWeights& w, const float* x, float* out, const Rows& rows,
                 MlaActs* acts) {
  Workspace::Frame frame(p.ws);
  const Dims d(s, rows.n);
  const int64_t N = d.N;
  const std::vector<Segment>& segs = *rows.segs;
  // 1. The first projections of the query and the latent, one GEMM: a [N, first ; c_kv ; k_pe].
  float* a = kept_or_scratch(acts ? &acts->a : nullptr, p.ws, N * d.lda);
  linear(p, a, x, {Proj{first_projection(s, w)}, Proj{w.kv_a_proj_with_mqa}}, N);
  // 2. The query q [N, H, qk] (rows ldq apart), rope on q_pe. 3. The latent: c_kv normalized into
  // ckv_n [N, C], k_pe roped in place (rows lda apart), and, in the naive form, every head's k_nope and
  // v decompressed, kv [N, H·kvw]. The two branches are independent: in the naive form they run side by
  // side, one core each (small GEMMs run better so than split over both cores).
  const bool naive = rows.form == MlaForm::Naive;
  float* q = d.ql ? kept_or_scratch(acts ? &acts->q : nullptr, p.ws, N * d.H * d.qk) : a;
  const int64_t ldq = d.ql ? d.H * d.qk : d.lda;
  float* qa_n = d.ql ? kept_or_scratch(acts ? &acts->qa_n : nullptr, p.ws, N * d.ql) : nullptr;
  float* qa_rstd = d.ql && acts ? kept_or_scratch(&acts->qa_rstd, p.ws, N) : nullptr;
  float* ckv_n = kept_or_scratch(acts ? &acts->ckv_n : nullptr, p.ws, N * d.C);
  float* ckv_rstd = acts ? kept_or_scratch(&acts->ckv_rstd, p.ws, N) : nullptr;
  float* kpe = a + d.n1 + d.C;
  float* kv = naive ? kept_or_scratch(acts ? &acts->kv : nullptr, p.ws, N * d.H * d.kvw) : nullptr;
  auto query = [&](const Pass& tp) {
    if (d.ql) {
      rmsnorm(qa_n, a, w.q_a_layernorm, N, d.ql, s.eps, qa_rstd, d.lda, d.ql);
      linear(tp, q, qa_n, w.q_b_proj, N);
    }
    s.rope->apply(q + d.nope, N, d.H, ldq, d.qk, rows.pos);
  };
  auto latent = [&](const Pass& tp) {
    rmsnorm(ckv_n, a + d.n1, w.kv_a_layernorm, N, d.C, s.eps, ckv_rstd, d.lda, d.C);
    s.rope->apply(kpe, N, 1, d.lda, d.R, rows.pos);
    if (naive) linear(tp, kv, ckv_n, w.kv_b_proj, N);
  };
  if (naive) {
    p.ws.reserve_threads(max_threads());
    parallel_tasks(2, [&](int64_t i, int thread) {
      const Pass tp{p.ws.thread(thread), p.fp8, nullptr};
      Workspace::Frame task_frame(tp.ws);
      i == 0 ? query(tp) : latent(tp);
    });
  } else {
    query(p);
    latent(p);
  }

  float* attn = kept_or_scratch(acts ? &acts->attn : nullptr, p.ws, N * d.H * d.vd);  // [N, H·v]
  if (rows.form == MlaForm::Absorbed) {
    SEEK_ASSERT_MSG(!acts, "MLA trains in the naive form");
    const float* Wkvb = w.kv_b_f32;  // [H·kvw, C]
    const int64_t CR = d.C + d.R;
    for (const Segment& sg : segs) {
      SEEK_ASSERT(sg.cache);
      const int64_t T = sg.T, L = sg.pos0 + T, r0 = sg.row0;
      const int64_t cap = int64_t(sg.cache->k.size()) / CR;
      float* latent = sg.cache->k.data();  // [cap, C + R]
      for (int64_t t = 0; t < T; ++t) {
        std::memcpy(latent + (sg.pos0 + t) * CR, ckv_n + (r0 + t) * d.C, sizeof(float) * size_t(d.C));
        std::memcpy(latent + (sg.pos0 + t) * CR + d.C, kpe + (r0 + t) * d.lda, sizeof(float) * size_t(d.R));
      }
      const float* qs = q + r0 * ldq;
      if (T < kPrefillDecompress) {
        absorbed_decode(p, s, d, qs, ldq, sg, w, latent, cap, attn + r0 * d.H * d.vd);
        continue;
      }
      // Decompress every cached position's k_nope and v: kv [L, H·kvw] = c_kv · kv_b_projᵀ, then
      // attention per head with the rope part read from the latent rows (head stride 0).
      Workspace::Frame seg_frame(p.ws);
      float* kv = p.ws.alloc<float>(cap * d.H * d.kvw);
      gemm(false, true, L, d.H * d.kvw, d.C, 1.f, latent, CR, Wkvb, d.C, 0.f, kv, d.H * d.kvw);
      AttentionJob job;
      job.T = T;
      job.pos0 = sg.pos0;
      job.q = {qs, d.qk, ldq, d.nope};
      job.k = {kv, d.kvw, d.H * d.kvw, d.nope};
      job.q2 = {qs + d.nope, d.qk, ldq, d.R};
      job.k2 = {latent + d.C, 0, CR, d.R};
      job.v = {kv + d.nope, d.kvw, d.H * d.kvw, d.vd};
      job.out = attn + r0 * d.H * d.vd;
      job.ldo = d.H * d.vd;
      causal_attention(p, {&job, 1}, d.H, s.softmax_scale);
    }
  } else {
    // Naive: the new rows' keys and values were decompressed above (kv).
    const bool cached = !segs.empty() && segs[0].cache;
    // Per-head keys [k_nope ; k_pe]: into each segment's cache (K [cap, H, qk], V [cap, H, v]), or, with
    // no cache, into K [N, H, qk] (the values are read from kv in place).
    float* K = cached ? nullptr : kept_or_scratch(acts ? &acts->K : nullptr, p.ws, N * d.H * d.qk);
    AttentionJob* jobs = make_n<AttentionJob>(p.ws, int64_t(segs.size()));
    int64_t probs_at = 0;
    if (acts) kept_or_scratch(&acts->probs, p.ws, [&] {
        int64_t n = 0;
        for (const Segment& sg : segs) n += d.H * sg.T * sg.T;
        return n;
      }());
    for (size_t i = 0; i < segs.size(); ++i) {
      const Segment& sg = segs[i];
      SEEK_ASSERT(bool(sg.cache) == cached);
      const int64_t T = sg.T, r0 = sg.row0;
      float* Ks = cached ? sg.cache->k.data() : K + r0 * d.H * d.qk;
      const int64_t k0 = cached ? sg.pos0 : 0;  // first row of Ks written
      parallel_for(T, d.H * (d.qk + d.vd), [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t)
          for (int64_t h = 0; h < d.H; ++h) {
            float* kd = Ks + ((k0 + t) * d.H + h) * d.qk;
            const float* src = kv + (r0 + t) * d.H * d.kvw + h * d.kvw;
            std::memcpy(kd, src, sizeof(float) * size_t(d.nope));
            std::memcpy(kd + d.nope, kpe + (r0 + t) * d.lda, sizeof(float) * size_t(d.R));
            if (cached)
              std::memcpy(sg.cache->v.data() + ((k0 + t) * d.H + h) * d.vd, src + d.nope, sizeof(float) * size_t(d.vd));
          }
      });
      AttentionJob& job = jobs[i];
      job.T = T;
      job.pos0 = sg.pos0;
      job.q = {q + r0 * ldq, d.qk, ldq, d.qk};
      job.k = {Ks, d.qk, d.H * d.qk, d.qk};
      job.v = cached ? Heads{sg.cache->v.data(), d.vd, d.H * d.vd, d.vd}
                     : Heads{kv + r0 * d.H * d.kvw + d.nope, d.kvw, d.H * d.kvw, d.vd};
      job.out = attn + r0 * d.H * d.vd;
      job.ldo = d.H * d.vd;
      if (acts) {
        SEEK_ASSERT(sg.pos0 == 0);
        job.probs = acts->probs.data() + probs_at;
        probs_at += d.H * T * T;
      }
    }
    causal_attention(p, {jobs, segs.size()}, d.H, s.softmax_scale);
  }
  // 4. The output projection.
  linear(p, out, attn, w.o_proj, N);
}

void mla_backward(const Pass& p, const MlaSpec& s, const MlaWeights& w, MlaGrads& g, const float* x, const float* dout,
                  float* dx, const Rows& rows, const MlaActs& a) {
  Workspace::Frame frame(p.ws);
  const Dims d(s, rows.n);
  const int64_t N = d.N;
  const std::vector<Segment>& segs = *rows.segs;
  const float* q = d.ql ? a.q.data() : a.a.data();
  const int64_t ldq = d.ql ? d.H * d.qk : d.lda;
  // 4'. The output projection.
  float* dattn = p.ws.alloc<float>(N * d.H * d.vd);
  linear_backward(p, dattn, false, ProjGrad{g.o_proj}, dout, a.attn.data(), w.o_proj, N);
  // 3'. Attention, into dq [N, H·qk], dK [N, H, qk] and the v columns of dkv [N, H·kvw].
  float* dq = p.ws.alloc<float>(N * d.H * d.qk);
  float* dK = p.ws.alloc<float>(N * d.H * d.qk);
  float* dkv = p.ws.alloc<float>(N * d.H * d.kvw);
  AttentionGradJob* jobs = make_n<AttentionGradJob>(p.ws, int64_t(segs.size()));
  int64_t probs_at = 0;
  for (size_t i = 0; i < segs.size(); ++i) {
    const Segment& sg = segs[i];
    const int64_t r0 = sg.row0;
    AttentionGradJob& j = jobs[i];
    j.T = sg.T;
    j.q = {q + r0 * ldq, d.qk, ldq, d.qk};
    j.k = {a.K.data() + r0 * d.H * d.qk, d.qk, d.H * d.qk, d.qk};
    j.v = {a.kv.data() + r0 * d.H * d.kvw + d.nope, d.kvw, d.H * d.kvw, d.vd};
    j.dq = {dq + r0 * d.H * d.qk, d.qk, d.H * d.qk};
    j.dk = {dK + r0 * d.H * d.qk, d.qk, d.H * d.qk};
    j.dv = {dkv + r0 * d.H * d.kvw + d.nope, d.kvw, d.H * d.kvw};
    j.dout = dattn + r0 * d.H * d.vd;
    j.lddo = d.H * d.vd;
    j.probs = a.probs.data() + probs_at;
    probs_at += d.H * sg.T * sg.T;
  }
  // dv goes into dkv's v columns (the k_nope columns are written below).
  causal_attention_backward(p, {jobs, segs.size()}, d.H, d.H, s.softmax_scale);
  // 2'. Keys back to kv's k_nope columns and the shared k_pe (summed over heads), dkpe [N, R].
  float* dkpe = p.ws.alloc<float>(N * d.R);
  parallel_for(N, d.H * d.qk, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      float* dp = dkpe + t * d.R;
      std::fill(dp, dp + d.R, 0.f);
      for (int64_t h = 0; h < d.H; ++h) {
        const float* dk = dK + (t * d.H + h) * d.qk;
        std::memcpy(dkv + (t * d.H + h) * d.kvw, dk, sizeof(float) * size_t(d.nope));
        for (int64_t r = 0; r < d.R; ++r) dp[r] += dk[d.nope + r];
      }
    }
  });
  // 1'. The latent and query paths back to a [N, lda], then the first projections.
  float* da = p.ws.alloc<float>(N * d.lda);  // every column written below
  float* dckv_n = p.ws.alloc<float>(N * d.C);
  linear_backward(p, dckv_n, false, ProjGrad{g.kv_b_proj}, dkv, a.ckv_n.data(), w.kv_b_proj, N);
  rmsnorm_backward(da + d.n1, g.kv_a_layernorm, dckv_n, a.a.data() + d.n1, w.kv_a_layernorm, a.ckv_rstd.data(), N, d.C,
                   d.lda, false);
  for (int64_t t = 0; t < N; ++t) std::memcpy(da + t * d.lda + d.n1 + d.C, dkpe + t * d.R, sizeof(float) * size_t(d.R));
  s.rope->apply(da + d.n1 + d.C, N, 1, d.lda, d.R, rows.pos, true);
  s.rope->apply(dq + d.nope, N, d.H, d.H * d.qk, d.qk, rows.pos, true);
  if (d.ql) {
    float* dqa_n = p.ws.alloc<float>(N * d.ql);
    linear_backward(p, dqa_n, false, ProjGrad{g.q_b_proj}, dq, a.qa_n.data(), w.q_b_proj, N);
    rmsnorm_backward(da, g.q_a_layernorm, dqa_n, a.a.data(), w.q_a_layernorm, a.qa_rstd.data(), N, d.ql, d.lda, false);
  } else {
    for (int64_t t = 0; t < N; ++t) std::memcpy(da + t * d.lda, dq + t * d.H * d.qk, sizeof(float) * size_t(d.n1));
  }
  linear_backward(p, dx, false, {ProjGrad{d.ql ? g.q_a_proj : g.q_proj}, ProjGrad{g.kv_a_proj_with_mqa}}, da, x,
                  {Proj{first_projection(s, w)}, Proj{w.kv_a_proj_with_mqa}}, N);
}

}  // namespace seek
