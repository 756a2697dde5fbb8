"""Tests of the central service (central/)."""
