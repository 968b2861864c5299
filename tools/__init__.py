"""Developer tooling: the local AWS emulator and Terraform runs against synthesized stacks."""
