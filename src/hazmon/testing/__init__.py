"""Helpers that start real local peers for tests and benchmarks (never mocks)."""
