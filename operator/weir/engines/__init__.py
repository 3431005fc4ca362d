"""Engines: what runs the model, in production and in tests.

In production weir runs TensorRT-LLM (`trtllm-serve`) pods; `launch`, `cache` and
`coldstart` produce their Kubernetes objects and estimate how long a new one takes
to become ready. Our machines have no GPU, so the rest of weir is tested against
engines that speak the same API and export the same metric names: a real
PyTorch transformer with continuous batching (`torch_backend`, optional extra
`engine`) and an emulated engine that replays a measured profile with asyncio
timers (`emulated`), cheap enough to run dozens of replicas on two cores. The
profiler (`profiler`) measures those profiles against any OpenAI-compatible
endpoint.
"""
