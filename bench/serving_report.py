"""What bench/serving.py prints: gateway against direct, with the issue's targets beside."""

from __future__ import annotations

from typing import Any


def report(f: dict[str, Any], threads: int, model: str, tokens: int) -> None:
    """The figures of bench/serving.py (figures_of), against their targets."""
    print(f"starter model {model} on {f['backend']}, {tokens}-token answers (EOS ignored), {f['rounds']} "
          f"interleaved rounds, {threads} threads")
    print(f"{'':28}{'direct':>12}{'gateway':>12}{'ratio':>9}   target")
    print(f"{'tokens/s, 1 stream':28}{f['direct_tps_1']:>12.1f}{f['gateway_tps_1']:>12.1f}"
          f"{f['ratio_1']:>9.3f}   ≥ 0.97")
    print(f"{'tokens/s, 8 streams':28}{f['direct_tps_8']:>12.1f}{f['gateway_tps_8']:>12.1f}"
          f"{f['ratio_8']:>9.3f}   ≥ 0.97")
    print(f"{'p50 TTFT ms, paired':28}{f['ttft_p50_direct_ms']:>12.1f}{f['ttft_p50_gateway_ms']:>12.1f}"
          f"{f['added_ttft_p50_ms']:>+9.2f}   added ≤ 2 ms (p50 of {f['ttft_pairs']} paired differences)")
    if f["llama_bench_tg128"]:
        print(f"llama-bench tg128: {f['llama_bench_tg128']:.1f} tok/s; single stream ÷ tg128: gateway "
              f"{f['single_stream_vs_tg128_gateway']:.2f}, direct {f['single_stream_vs_tg128_direct']:.2f}")
        print(f"  its decode rate alone (after the first token, prompt left out), median: gateway "
              f"{f['decode_tps_1_gateway']:.1f} tok/s = {f['decode_vs_tg128_gateway']:.2f}, "
              f"direct {f['decode_tps_1_direct']:.1f} = {f['decode_vs_tg128_direct']:.2f}")
    print(f"8 streams ÷ 1 stream: gateway {f['scale_8_vs_1_gateway']:.2f}×, direct {f['scale_8_vs_1_direct']:.2f}×")
    print(f"32 requests at 8-way concurrency, all {tokens} tokens each, every round: {f['all_32_complete']}")
    dropped = f["dropped_keepalive_retries"]
    print(f"reused keep-alive connections the server closed unanswered (retried once): "
          f"direct {dropped.get('direct', 0)}, gateway {dropped.get('gateway', 0)}")
