"""schemathesis hooks for test/openapi-fuzz.e2e.test.ts: sign webhook deliveries as their senders do.

Without a valid signature every generated webhook body stops at the 401; signed, the body reaches the parsers and the
workflow engine, where a server error would hide. Signs exactly the bytes sent (the hook passes them as the request
body), as documented in /openapi.json's x-changegate-signatures. Secrets come from the environment the test sets.
"""

import base64
import hashlib
import hmac
import json
import os
import time

import schemathesis
from schemathesis.core import NotSet

# Which webhook is signed how, with which secret (environment variable).
_CHANGEGATE_STYLE = {"servicenow": "CG_FUZZ_SERVICENOW_SECRET", "deploy": "CG_FUZZ_DEPLOY_SECRET"}
_HUB_STYLE = {"jira": "CG_FUZZ_JIRA_SECRET"}


@schemathesis.hook
def before_call(context, case, kwargs):
    path = case.operation.path
    if not path.startswith("/webhooks/") or isinstance(case.body, NotSet):
        return
    source = (case.path_parameters or {}).get("source") if path == "/webhooks/{source}" else path.rsplit("/", 1)[1]
    raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode("utf-8")
    headers = dict(case.headers or {})
    if source in _CHANGEGATE_STYLE and os.environ.get(_CHANGEGATE_STYLE[source]):
        secret = os.environ[_CHANGEGATE_STYLE[source]].encode("utf-8")
        timestamp = str(int(time.time()))
        mac = hmac.new(secret, timestamp.encode("utf-8") + b"." + raw, hashlib.sha256).digest()
        headers["x-changegate-signature"] = base64.b64encode(mac).decode("ascii")
        headers["x-changegate-timestamp"] = timestamp
    elif source in _HUB_STYLE and os.environ.get(_HUB_STYLE[source]):
        secret = os.environ[_HUB_STYLE[source]].encode("utf-8")
        headers["x-hub-signature"] = "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()
    else:
        return
    case.headers = headers
    # A body passed here replaces the generated one, so the signed bytes are the bytes sent.
    kwargs["data"] = raw
