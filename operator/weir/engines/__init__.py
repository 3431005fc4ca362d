"""Engines as production runs them: TensorRT-LLM launch specs, caches, cold starts.

`launch`, `cache` and `recipes` produce the Kubernetes objects of `trtllm-serve`
replicas; `coldstart` estimates how long a new one takes to become ready from
the state of its caches; `profiler` measures any OpenAI-compatible endpoint's
capacity curve into an engine profile. The stand-in engines used where no GPU
is (tests, the lab) live apart, in `weir.refengine`.
"""
