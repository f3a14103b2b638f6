"""Bundled sample data for the embedded defaults and `lapse simulate`."""
