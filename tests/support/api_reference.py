"""The project's API reference, docs/api.md, and the error codes its table documents."""

import re

from tests.conftest import REPO

API_REFERENCE = (REPO / "docs" / "api.md").read_text()
# code -> (status, type), from the reference's table of error codes
ERROR_CODES = {
    code: (status, error_type)
    for code, status, error_type in re.findall(
        r"^\| `(\w+)` \| (\w+) \| (\w+) \|", API_REFERENCE.split("### Error codes", 1)[1], re.MULTILINE
    )
}
