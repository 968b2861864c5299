"""Helpers the test modules share: requests to the HTTP edge, use-case calls on the fakes, ledger chains, the
API reference's error codes, scripted gateways. Test modules import from here, never from one another."""
