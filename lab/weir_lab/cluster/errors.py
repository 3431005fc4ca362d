"""Errors of the local cluster tooling, each saying what to do next."""

from __future__ import annotations


class ClusterError(RuntimeError):
    """The local cluster cannot be started, stopped or read; the message says why and what to do."""


class ToolchainError(ClusterError):
    """A binary is missing or failed to build; nothing was started."""


class PortInUseError(ClusterError):
    """A port the cluster needs is taken by a process that is not ours."""
