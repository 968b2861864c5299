"""The API reference lives in the project and stays in step with the code: the route table of docs/api.md is
lambdas/routes.py, every served route has its section, every error code is in its table (tests.support.api's
assert_error checks each answered one), and the README links the project's docs, not a sibling directory a clone
does not have."""

import re

from lambdas.routes import ROUTES
from tests.conftest import REPO
from tests.support.api_reference import API_REFERENCE, ERROR_CODES

README = (REPO / "README.md").read_text()


def test_the_route_table_is_the_routes_the_service_serves():
    table = API_REFERENCE.split("## Routes served", 1)[1].split("\n\n")[2]
    rows = re.findall(r"^\| (\w+) \| `([^`]+)` \| (\w+) \| (\w*) \|$", table, re.MULTILINE)
    expected = [
        (r.method, r.path, r.function.value, "required" if r.idempotent else "optional" if r.method == "POST" else "")
        for r in ROUTES
    ]
    assert rows == expected


def test_every_served_route_has_its_section():
    sections = set(re.findall(r"^### (\w+ /[^\s:]+)", API_REFERENCE, re.MULTILINE))
    assert {f"{r.method} {r.path}" for r in ROUTES} <= sections


def test_the_readme_links_the_projects_own_reference():
    assert "(docs/api.md)" in README and "(docs/sparkle-gateway.md)" in README
    assert "../shared" not in README and (REPO / "docs" / "sparkle-gateway.md").exists()


def test_api_gateways_own_and_the_local_signature_checks_codes_are_documented():
    from stacks.payment_api import GATEWAY_RESPONSES  # the stack module imports slowly: only here

    for status, error_type, code, _ in GATEWAY_RESPONSES.values():
        assert ERROR_CODES[code] == (
            str(status) if status else "4xx" if error_type != "api_error" else "500",
            error_type,
        )
    rejections = set(re.findall(r'SignatureRejected\(\s*"(\w+)"', (REPO / "tools" / "sigv4.py").read_text()))
    assert rejections == {"missing_authentication_token", "invalid_signature", "expired_signature"}
    assert {ERROR_CODES[code] for code in rejections} == {("403", "permission_error")}


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors of a document's headings."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_link_to_a_section_of_the_docs_names_a_heading_that_exists():
    """Links (``[text](#section)``, ``[text](other.md#section)``) and references in code spans
    (`` `docs/runbook.md#section` ``, from the repository's root), in the README and every document of docs/."""
    links = []
    for document in (REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))):
        text = document.read_text()
        links += [(document, document.parent / path if path else document, anchor)
                  for path, anchor in re.findall(r"\]\(([\w./-]*?)#([\w-]+)\)", text)]  # fmt: skip
        links += [(document, REPO / path, anchor) for path, anchor in re.findall(r"`([\w/.-]+\.md)#([\w-]+)`", text)]
    assert {target.name for _, target, _ in links} >= {"runbook.md"}
    missing = [f"{source.name}: {target.name}#{anchor}" for source, target, anchor in links
               if anchor not in _anchors(target.read_text())]  # fmt: skip
    assert missing == []


def test_the_docs_count_the_functions_and_the_concurrency_prod_reserves():
    from lambdas.routes import Function
    from stacks.config import REPOSITORY_SETTINGS

    reserved = REPOSITORY_SETTINGS["prod"]["functions"].reserved_concurrency
    operating = " ".join((REPO / "docs" / "operating.md").read_text().split())
    architecture = " ".join((REPO / "docs" / "architecture.md").read_text().split())
    assert f"what the functions reserve ({len(Function)} x {reserved} in prod;" in operating
    assert f"one per responsibility ({', '.join(f.value for f in Function)})," in architecture
