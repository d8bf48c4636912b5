"""Chaos tests: the stack runtime against a faulty emulator (see docs/reliability-chaos.md)."""
