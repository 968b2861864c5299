"""The Sparkle sandbox: an HTTP server speaking the gateway protocol
(shared/docs/sparkle-gateway.md), charges in memory, outcomes by test card."""
