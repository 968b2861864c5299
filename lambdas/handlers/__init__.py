"""Thin API Gateway handlers, one module per function."""
