"""Tests of the billing sources and parsers against real files, databases and HTTP servers."""
