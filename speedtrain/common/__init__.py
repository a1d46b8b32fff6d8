"""Foundations every layer may use: the error types and atomic file writes."""
