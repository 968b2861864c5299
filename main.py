"""Synthesizes the payment ledger service's stacks into cdktf.out/ (`cdktf synth` runs this)."""

from stacks.app import build_app

if __name__ == "__main__":
    build_app().synth()
