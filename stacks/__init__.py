"""Constructs and stacks of the payment ledger service."""

import os

# jsii's Node runtime warns on stderr when the Node in use is past its end of life or deprecated, before jsii's own
# protocol starts, and jsii's Python side then prints each line of the banner as a bytes repr. The README names the
# Node versions this app runs on; these two warnings are silenced here, before any module loads jsii (set either
# variable empty to see them). An untested or known-broken Node still warns.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20,22,24")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
