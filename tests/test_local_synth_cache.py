"""`make local` reuses a synth only while everything the synth reads is unchanged."""

from tools import local


def test_the_synth_digest_follows_every_input_and_nothing_else(monkeypatch, tmp_path):
    for name in ("main.py", "cdktf.json", "Pipfile.lock", "stacks/app.py", "lambdas/domain/money.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / "lambdas" / "__pycache__").mkdir()
    monkeypatch.setattr(local, "REPO", tmp_path)
    first = local.synth_digest()
    (tmp_path / "README.md").write_text("not an input")
    (tmp_path / "lambdas" / "__pycache__" / "money.cpython-311.pyc").write_bytes(b"compiled")
    assert local.synth_digest() == first
    changed = []
    for name in ("main.py", "cdktf.json", "Pipfile.lock", "stacks/app.py", "lambdas/domain/money.py"):
        original = (tmp_path / name).read_text()
        (tmp_path / name).write_text(original + " edited")
        if local.synth_digest() == first:
            changed.append(name)
        (tmp_path / name).write_text(original)
    (tmp_path / "lambdas" / "domain" / "rules.py").write_text("a new module")
    if local.synth_digest() == first:
        changed.append("a new file under lambdas/")
    assert changed == [], f"the digest misses an edit of: {changed}"
