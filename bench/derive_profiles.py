"""Derive engines/profiles/*.yaml from the published figures in serving-facts.md.

Why a script: the profiles are data the planner and the emulated engine both
trust, so how each number was obtained must be reproducible. Each profile
holds the published SLO-aware points verbatim (`derived: false`) and points
derived from a six-parameter mechanics model (`derived: true`, see
weir.planner.capacity) calibrated by hand on those points and on physical
constants (weights and KV bytes over memory bandwidth). The saturation tables
(trtllm-bench, infinite arrival rate, 52 s TTFT) are ceilings, not SLO-feasible
rates: they are used only as a check on the model's throughput at full batch,
and the ratio is written into each profile's `source`.

Run from the repository root: `.venv/bin/python bench/derive_profiles.py`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from weir.planner.capacity import CapacityModel, EngineParams

OUT = Path("engines/profiles")
SHAPES = ((1000, 1000), (5000, 500), (2048, 128), (1000, 200), (500, 2000), (200, 200))
CONCURRENCY = (1, 4, 8, 16, 32, 48, 64, 96)
TTFT_P95_RATIO = 1.6  # assumed: published curves give one TTFT number (mean/median)
ITL_P95_RATIO = 1.1  # assumed, same reason

PROFILES: dict[str, dict[str, object]] = {
    "llama-3.3-70b-fp8-h100-tp2": {
        "model": "meta-llama/Llama-3.3-70B-Instruct",
        "gpu": "H100-SXM-80GB",
        "tensor_parallel": 2,
        "params": EngineParams(0.0175, 3e-5, 2.1e-5, 7.5e-5, 0.0, 0.9, 1.1, 256, 410_000, 2048),
        "measured": [
            (1, 5000, 500, 0.407, 0.0186, 52.0),
            (25, 5000, 500, 0.689, 0.0388, 623.0),
            (50, 5000, 500, 0.835, 0.0597, 814.0),
        ],
        "ceilings": {(1000, 1000): 4205, (5000, 500): 898, (2048, 128): 762, (20000, 2000): 437},
        "note": "NIM 1.8.0 SLO curve, 2xH100 FP8 TP2, 5000/500 (concurrency 1, 25, 50; 100 and "
        "250 are past saturation: only the queue grows, so they are left out and the batch "
        "limit is where ITL passes ~60 ms). Decode step 17.5 ms + 0.03 ms/seq + 0.021 ms/seq/ktok "
        "(KV bytes 164 kB/token over 6.7 TB/s); prefill 75 us/token (13.3k tok/s); KV cache "
        "410k tokens (2x80 GB x0.9 minus 71 GB weights, FP8 KV). Chunked prefill at 2048 "
        "tokens per step.",
    },
    "llama-3.3-70b-fp8-h200-tp1": {
        "model": "meta-llama/Llama-3.3-70B-Instruct",
        "gpu": "H200-SXM-141GB",
        "tensor_parallel": 1,
        "params": EngineParams(0.0244, 6e-5, 2.9e-5, 1.5e-4, 0.0, 0.9, 1.1, 256, 311_000, 2048),
        "measured": [],
        "ceilings": {(1000, 1000): 2909, (5000, 500): 566, (2048, 128): 442, (20000, 2000): 283},
        "note": "No published SLO curve: the H100 TP2 mechanics scaled to one H200 (memory "
        "bandwidth 4.8 vs 6.7 TB/s, half the compute for prefill); KV cache 311k tokens.",
    },
    "llama-3.1-8b-fp8-h100-tp1": {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "gpu": "H100-SXM-80GB",
        "tensor_parallel": 1,
        "params": EngineParams(0.0044, 1e-5, 1.96e-5, 1.7e-5, 0.007, 0.9, 1.1, 256, 900_000, 2048),
        "measured": [
            (1, 200, 200, 0.0103, 0.00463, 215.0),
            (100, 200, 200, 0.120, 0.00757, 12215.0),
        ],
        "ceilings": {
            (1000, 1000): 15220,
            (5000, 500): 3459,
            (2048, 128): 3450,
            (20000, 2000): 1351,
        },
        "note": "NIM page's Llama-3.1-8B points (GPU and ISL/OSL not visible in the excerpt: "
        "assumed H100 and 200/200, which the throughput at concurrency 1 and 100 agrees with; "
        "250 is saturated and left out). Decode step 4.4 ms (8.5 GB weights over 3.35 TB/s plus "
        "overhead), prefill 17 us/token, KV cache 900k tokens.",
    },
    "llama-3.1-8b-fp8-h200-tp1": {
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "gpu": "H200-SXM-141GB",
        "tensor_parallel": 1,
        "params": EngineParams(
            0.0037, 1e-5, 1.37e-5, 1.7e-5, 0.007, 0.9, 1.1, 256, 1_740_000, 2048
        ),
        "measured": [],
        "ceilings": {
            (1000, 1000): 17744,
            (5000, 500): 3902,
            (2048, 128): 3538,
            (20000, 2000): 1804,
        },
        "note": "The H100 mechanics with H200 memory bandwidth (4.8 TB/s) and KV cache "
        "(1.74M tokens).",
    },
}


def ceiling_check(model: CapacityModel, ceilings: dict[tuple[int, int], int]) -> str:
    """Model throughput at full batch against the trtllm-bench ceiling, per shape."""
    parts = []
    p = model.params
    for (inp, out), published in ceilings.items():
        batch = min(p.max_batch, int(p.kv_cache_tokens // (inp + out)))
        pred = model.closed_loop(batch, inp, out)
        parts.append(f"{inp}/{out}: {pred.rate_rps * out:,.0f} vs {published:,} tok/s")
    return "; ".join(parts)


def points_for(model: CapacityModel, measured: list[tuple[float, ...]]) -> list[dict[str, object]]:
    """Measured points verbatim, then derived points where the replica is not saturated."""
    points: list[dict[str, object]] = []
    for conc, inp, out, ttft, itl, tput in measured:
        points.append(_point(int(conc), int(inp), int(out), ttft, itl, tput, derived=False))
    for inp, out in SHAPES:
        for conc in CONCURRENCY:
            if conc * (inp + out) > model.params.kv_cache_tokens:
                continue
            pred = model.closed_loop(conc, inp, out)
            if pred.prefill_utilisation > 0.9 or pred.itl_mean_s > 0.2:
                continue
            points.append(
                _point(conc, inp, out, pred.ttft_mean_s, pred.itl_mean_s, pred.rate_rps * out, True)
            )
    return points


def _point(
    conc: int, inp: int, out: int, ttft: float, itl: float, tput: float, derived: bool
) -> dict[str, object]:
    return {
        "concurrency": conc,
        "input_tokens": inp,
        "output_tokens": out,
        "ttft_p50_s": round(ttft, 4),
        "ttft_p95_s": round(ttft * TTFT_P95_RATIO, 4),
        "itl_p50_s": round(itl, 5),
        "itl_p95_s": round(itl * ITL_P95_RATIO, 5),
        "output_tokens_per_s": round(tput, 1),
        "derived": derived,
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, spec in PROFILES.items():
        params = spec["params"]
        assert isinstance(params, EngineParams)
        model = CapacityModel(params)
        measured = spec["measured"]
        ceilings = spec["ceilings"]
        assert isinstance(measured, list) and isinstance(ceilings, dict)
        source = (
            f"{spec['note']} Derived points come from the mechanics model in "
            "weir.planner.capacity with these parameters (bench/derive_profiles.py); "
            f"TTFT p95 = {TTFT_P95_RATIO}x and ITL p95 = {ITL_P95_RATIO}x the median are assumed. "
            "Saturation tables (serving-facts.md A, trtllm-bench FP8) are ceilings with "
            "minute-long "
            "TTFT, used only as a check of model throughput at full batch: "
            f"{ceiling_check(model, ceilings)}."
        )
        doc = {
            "model": spec["model"],
            "gpu": spec["gpu"],
            "precision": "fp8",
            "tensor_parallel": spec["tensor_parallel"],
            "source": source,
            "max_concurrency": params.max_batch,
            "kv_cache_tokens": params.kv_cache_tokens,
            "prefill_chunk_tokens": params.chunk_tokens,
            "points": points_for(model, measured),
        }
        (OUT / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, width=100))
        print(f"{name}: {len(doc['points'])} points; {ceiling_check(model, ceilings)}")


if __name__ == "__main__":
    main()
