#!/usr/bin/env python3
"""estimate_gpu_routes.py: an ESTIMATE, not a measurement, of what the CUDA routes of issue 13
save per batch: the activation bytes each route's kernels and GEMMs must move through device
memory (each tensor read or written once per op, as cuda/encoder_cuda.cu's enc_cuda_submit
launches them; weights, which every route reads alike, left out) and what that traffic costs at
a memory bandwidth, beside the batch's tensor-core FLOPs at a peak.

Routes (DESIGN.md section 3):
  fp32-act  the default: GEMMs write fp32, k_bias_rows pre-fills the QKV output for beta = 1,
            bias + GELU reads fp32 and writes fp32 plus the fp16 copy, the chunked decoder writes
            and the max-pool reads fp32 logits
  lp-act    SPLADEX_CUDA_ACTIVATIONS=lp (with SPLADEX_CUDA_ATTENTION=mma): the layer GEMMs write
            fp16, the QKV bias is added by the attention kernel while it stages q, k, v, bias +
            GELU in place on fp16, the chunked decoder's logits fp16; the MLM head as fp32-act
The attention kernels' own time (the issue's model: ~36% of a batch on the fp32 route, bound by
instruction issue, not by bytes) is not modelled here: see benchmarks/RESULTS.md.

Last, the decoder routes (issue 13 item 3): the chunked decoder is cuBLAS's GEMM (on Hopper its
own wgmma kernels) plus the logits written and read; the fused kernels (SPLADEX_CUDA_DECODER=fused:
mma.sync, =wgmma: sm_90a) move no logits, so they win once their tile GEMM runs faster than the
rate printed, which depends on an ASSUMED cuBLAS rate (--cublas-fraction of the peak).

Usage: benchmarks/estimate_gpu_routes.py [--tokens 16320] [--bandwidth-tbs 4.8] [--peak-tflops 989]
       [--cublas-fraction 0.7]
Defaults: one 16,384-token budget of 80-token passages (204 passages, 16,320 tokens), the
naver/efficient-splade-VI-BT-large-doc shapes, an H200's HBM3e 4.8 TB/s and its dense fp16
tensor peak of 989 TFLOP/s (vendor figures).
"""
import argparse

L, H, F, V = 6, 768, 3072, 30522  # efficient-splade: DistilBERT 6 x 768, FFN 3072, vocab 30522


def traffic(n, lp_route):
    """Activation bytes of one batch of n tokens on a route, by op."""
    a = 2 if lp_route else 4  # bytes of a GEMM output / elementwise tensor on this route
    nh, nf, n3h = n * H, n * F, n * 3 * H
    ops = {}

    def add(name, b):
        ops[name] = ops.get(name, 0) + b

    for _ in range(L):
        if lp_route:
            add("qkv gemm", nh * 2 + n3h * 2)             # read x_lp, write qkv fp16
            add("attention", n3h * 2 + nh * 2)            # read qkv fp16, write ctx fp16
        else:
            add("qkv bias rows", n3h * 4)                 # k_bias_rows writes the bias
            add("qkv gemm", nh * 2 + n3h * 4 + n3h * 4)   # read x_lp, read C (beta 1), write
            add("attention", n3h * 4 + nh * 2)            # read qkv fp32, write ctx fp16
        add("out gemm", nh * 2 + nh * a)                  # read ctx, write projection
        add("residual layernorm", 2 * (nh * a + nh * 4 + nh * 4 + nh * 2))  # x2 per layer
        add("ffn1 gemm", nh * 2 + nf * a)
        if lp_route:
            add("bias gelu", nf * 2 + nf * 2)             # in place on fp16
        else:
            add("bias gelu", nf * 4 + nf * 4 + nf * 2)    # read fp32, write fp32 + fp16 copy
        add("ffn2 gemm", nf * 2 + nh * a)
    # MLM head, fp32 on both routes: GEMM, bias + GELU, LayerNorm (fp32 rows + the fp16 input
    # of the decoder)
    add("head", nh * 2 + nh * 4 + 2 * nh * 4 + nh * 4 + nh * 4 + nh * 2)
    # chunked decoder: every logit written by the GEMM and read by the max-pool
    add("decoder logits", 2 * n * V * a)
    return ops


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokens", type=int, default=16320)
    ap.add_argument("--bandwidth-tbs", type=float, default=4.8)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--cublas-fraction", type=float, default=0.7,
                    help="an assumption: cuBLAS's share of the peak on the decoder GEMM")
    args = ap.parse_args()
    n = args.tokens
    flops = 2 * n * L * (4 * H * H + 2 * H * F) + 2 * n * H * H + 2 * n * H * V
    t_flops = flops / (args.peak_tflops * 1e12) * 1e3
    print("ESTIMATE (arithmetic, no device): %d tokens, %.2f TFLOP of GEMMs = %.2f ms at %.0f "
          "TFLOP/s" % (n, flops / 1e12, t_flops, args.peak_tflops))
    base, lp = traffic(n, False), traffic(n, True)
    print("%-22s %12s %12s" % ("activation bytes", "fp32-act MB", "lp-act MB"))
    for k in base:
        print("%-22s %12.0f %12.0f" % (k, base[k] / 1e6, lp.get(k, 0) / 1e6))
    tb, tl = sum(base.values()), sum(lp.values())
    bw = args.bandwidth_tbs * 1e12
    print("%-22s %12.0f %12.0f" % ("total", tb / 1e6, tl / 1e6))
    print("at %.1f TB/s: %.2f ms vs %.2f ms per batch: %.2f ms less (%.0f%% of the traffic), "
          "= %.0f%% of the batch's GEMM time at peak"
          % (args.bandwidth_tbs, tb / bw * 1e3, tl / bw * 1e3, (tb - tl) / bw * 1e3,
             100 * (tb - tl) / tb, 100 * (tb - tl) / bw * 1e3 / t_flops))
    dec = 2 * n * H * V
    peak = args.peak_tflops * 1e12
    t_gemm = dec / (args.cublas_fraction * peak)
    for route, logits in (("fp32-act", base["decoder logits"]), ("lp-act", lp["decoder logits"])):
        t_chunked = t_gemm + logits / bw
        print("decoder, %s: %.3f TFLOP; chunked = GEMM at %.0f%% of peak %.3f ms + logits %.0f MB "
              "%.3f ms = %.3f ms; a fused kernel wins above %.0f TFLOP/s (%.0f%% of peak)"
              % (route, dec / 1e12, 100 * args.cublas_fraction, t_gemm * 1e3, logits / 1e6,
                 logits / bw * 1e3, t_chunked * 1e3, dec / t_chunked / 1e12,
                 100 * dec / t_chunked / peak))


if __name__ == "__main__":
    main()
