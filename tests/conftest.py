"""Shared pytest configuration for the kvorum test suite."""
