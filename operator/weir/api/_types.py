"""Constrained string and number types shared by every resource model.

A spec's strings end up as Kubernetes object names, label keys and values,
container images and command-line arguments of the pods weir creates. When a
model accepts a string the API server would refuse in a child (a 64-character
label value, a key with a space), the spec is stored, and reconcile fails
later, far from the user who wrote it. These types carry the Kubernetes
rules (RFC 1123 / 1035 names, qualified label keys, label values) and weir's
own (pinned images, model references) as `pattern` and `max_length`, so
pydantic refuses the string, and the generated CRD schema carries the same
`pattern`/`maxLength` and the API server refuses it at `kubectl apply`.

Patterns use only what both pydantic's (Rust) and the API server's (Go RE2)
regular expressions read the same way: character classes, bounded repeats,
no look-around, no backslashes (so they also fit in a CEL string literal).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

# RFC 1123 label: what a Service, a Deployment's pods and a label value can all hold.
DNS_LABEL_PATTERN = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# RFC 1035 label: starts with a letter; what a Service name must be.
DNS1035_LABEL_PATTERN = "^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
_SUBDOMAIN = "[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
DNS_SUBDOMAIN_PATTERN = f"^{_SUBDOMAIN}$"
# Label key: optional DNS-subdomain prefix and "/", then a name of at most 63.
LABEL_KEY_PATTERN = f"^({_SUBDOMAIN}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"
LABEL_KEY_MAX = 253 + 1 + 63
LABEL_VALUE_PATTERN = "^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
SECRET_KEY_PATTERN = "^[-._a-zA-Z0-9]+$"
# An image reference that names a tag or a digest (a bare name floats: weir pins).
_IMAGE_PATH = "[a-z0-9]+([._-]+[a-z0-9]+)*"
IMAGE_PATTERN = (
    f"^([a-zA-Z0-9.-]+(:[0-9]+)?/)?{_IMAGE_PATH}(/{_IMAGE_PATH})*"
    "(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[a-f0-9]{64})?|@sha256:[a-f0-9]{64})$"
)
# A Hugging Face id (org/name) or an absolute path on a mounted volume; no "..".
_SEGMENT = "[A-Za-z0-9_][A-Za-z0-9._-]*"
MODEL_REF_PATTERN = f"^/?{_SEGMENT}(/{_SEGMENT})*$"
# An http(s) URL as HostedEndpointSpec's baseUrl validator reads one: a host (no
# credentials), a port 1..65535, a path, no query, fragment or space. The CRD
# carries it as the field's pattern (the validator in hosted.py is the Python side).
_PORT = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
HTTP_URL_PATTERN = f"^[hH][tT][tT][pP][sS]?://[^/?#@:[:space:]]+(:{_PORT})?(/[^?#[:space:]]*)?$"
# A hosted provider's model name: printable, no spaces (e.g. org/name, name@date, a:b).
HOSTED_MODEL_PATTERN = "^[A-Za-z0-9][-A-Za-z0-9._:@/+=]*$"


def _label_key_prefix(value: str) -> str:
    prefix, slash, _ = value.rpartition("/")
    if slash and len(prefix) > 253:
        raise ValueError("the prefix of a label key (before '/') must be at most 253 characters")
    return value


DnsLabel = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN),
    Field(description="A DNS label (RFC 1123): lowercase letters, digits and '-', at most 63."),
]
DnsSubdomain = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]
LabelKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=LABEL_KEY_MAX, pattern=LABEL_KEY_PATTERN),
    AfterValidator(_label_key_prefix),
]
LabelValue = Annotated[str, StringConstraints(max_length=63, pattern=LABEL_VALUE_PATTERN)]
SecretDataKey = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)
]
ImageRef = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=IMAGE_PATTERN)]
ModelRef = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=MODEL_REF_PATTERN)
]
HostedModelName = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=HOSTED_MODEL_PATTERN)
]
# A product name such as H100-SXM-80GB: it becomes a metric label and a printer column.
ProductName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=LABEL_VALUE_PATTERN)
]

# Money bounds: far above any real fleet, low enough that sums of them stay exact.
MAX_DOLLARS_PER_HOUR = 1_000_000.0


def matches(pattern: str, value: str) -> bool:
    """Whether `value` matches one of the patterns above (for checks outside pydantic)."""
    return re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value) is not None
