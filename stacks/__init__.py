"""Constructs and stacks of the payment ledger service."""

import base64
import json
import os
import sys
from typing import IO

from jsii._kernel.providers import process as jsii_process  # the Python side only: Node starts with the first load

# jsii's Node runtime warns on stderr when the Node in use is past its end of life or deprecated, before jsii's own
# protocol starts. The README names the Node versions this app runs on; these two warnings are silenced here, before
# any module loads jsii (set either variable empty to see them). An untested or known-broken Node still warns.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,22,24")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


def _stderr_as_text(reader: IO[bytes]) -> None:
    """jsii's reader of Node's stderr, printing a line outside its protocol (a warning) as text, not as a bytes repr."""
    for line in iter(reader.readline, b""):
        try:
            console = json.loads(line)
        except ValueError:
            sys.stderr.write(line.decode(errors="replace"))
            continue
        if console.get("stderr") is not None:
            sys.stderr.buffer.write(base64.b64decode(console["stderr"]))
        if console.get("stdout") is not None:
            sys.stdout.buffer.write(base64.b64decode(console["stdout"]))


jsii_process.stderr_sink = _stderr_as_text
