"""Shared parts of the simulator and client tests (no tests here)."""

from __future__ import annotations

SIM_TOKEN = "sim-token"
# Backoff for tests: the real default (0.5 s doubling) would make retry tests slow.
TEST_BACKOFF = 0.01
