"""Images for the real node, made and loaded without a registry.

No registry can be reached from these machines, so the node's sandbox (pause)
image is assembled here from the static `pause` binary e2e/node/build.sh
caches: one layer, written as a `docker save` archive, which `ctr images
import` reads. Images built with podman (weir's own) reach the node the same
way: `podman save` into an archive, then `import_archive`.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

from weir_lab.cluster.errors import ClusterError

# containerd's CRI plugin sees the images of this namespace only
CRI_NAMESPACE = "k8s.io"


def _layer(binary: Path) -> bytes:
    """An uncompressed layer holding `binary` as /pause (fixed times: same input, same digest)."""
    data = binary.read_bytes()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("pause")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def write_pause_archive(binary: Path, ref: str, archive: Path) -> None:
    """A `docker save`-format archive of an image `ref` whose entrypoint is `binary`."""
    layer = _layer(binary)
    diff_id = f"sha256:{hashlib.sha256(layer).hexdigest()}"
    image_config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "weir e2e/node/build.sh (pause)"}],
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config_bytes).hexdigest()}.json"
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": ["layer.tar"]}]
    members = {
        "layer.tar": layer,
        config_name: config_bytes,
        "manifest.json": json.dumps(manifest).encode(),
    }
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))


def import_archive(ctr: Path, address: Path, archive: Path) -> None:
    """Load an image archive into the node's containerd, where the kubelet finds it."""
    done = subprocess.run(
        [
            str(ctr),
            "--address",
            str(address),
            "-n",
            CRI_NAMESPACE,
            "images",
            "import",
            str(archive),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ClusterError(
            f"`ctr images import {archive}` failed: {done.stderr.strip() or done.stdout.strip()}"
        )
