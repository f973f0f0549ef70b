"""Helpers the tests share: generated data, raw HTTP, the service run in-process or behind uvicorn. Not tests."""
