"""Reference engines: OpenAI-compatible servers that stand in for TensorRT-LLM.

Production runs `trtllm-serve` pods (see `weir.engines`, which builds their
objects). Machines without a GPU, the tests and the lab need something that
speaks the same API and exports the same `trtllm_*` metric names: an emulated
engine that replays an engine profile's latencies with asyncio timers
(`emulated`, cheap enough for dozens of replicas on two cores) and a real
PyTorch transformer with continuous batching (`torch_backend`, optional
extra `engine`). Nothing that weir deploys to a cluster imports this package.
"""
