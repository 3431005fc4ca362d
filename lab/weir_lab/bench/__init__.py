"""The lab's benchmarks: the operator at fleet scale and the router against its peers.

Each prints ratios against peers measured in the same run; `weir bench
operator` and `weir bench router` reach them through the `weir.bench` entry
points of this distribution.
"""
