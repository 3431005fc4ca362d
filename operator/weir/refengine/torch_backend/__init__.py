"""The reference engine: a real PyTorch decoder-only transformer with continuous batching.

It exists so that weir's closed loop runs against real compute: latency that
comes from matrix multiplications and a batch that requests join and leave at
every step, as in TensorRT-LLM's in-flight batching. Random weights, a byte
tokenizer and a small default size: the numbers that matter are how latency
and throughput move with load, not what the model says. Needs the optional
`engine` extra (torch).
"""

from weir.refengine.torch_backend.engine import TorchEngine, TorchSettings

__all__ = ["TorchEngine", "TorchSettings"]
