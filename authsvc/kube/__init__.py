"""Kubernetes: the pod transform behind ``authsvc inject`` and ``authsvc webhook``.

    opts = InjectOptions(secret="litellm-master-key", app_port=4000)
    pod_template = inject_template(template, options=opts, path="spec.template")
    docs, outcome = inject_documents(load_documents(text, "app.yaml"), opts)
    ops = json_patch(before, after)          # RFC 6902 ops the webhook returns

All of it is pure (plain dicts in, new dicts out); the CLI and the HTTPS server are adapters.
"""

from authsvc.kube._documents import Outcome, inject_documents
from authsvc.kube._errors import InjectError
from authsvc.kube._inject import inject_template, skip_reason
from authsvc.kube._jsonpatch import json_patch
from authsvc.kube._options import InjectOptions
from authsvc.kube._yaml import dump_documents, load_documents

__all__ = [
    "InjectError",
    "InjectOptions",
    "Outcome",
    "dump_documents",
    "inject_documents",
    "inject_template",
    "json_patch",
    "load_documents",
    "skip_reason",
]
