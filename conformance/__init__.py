"""Autobahn TestSuite conformance runs for rawws (server and client side).

Run ``python -m conformance --help`` from the repository root.
"""
