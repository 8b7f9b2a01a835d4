"""Tools for testing drivers: the conformance kit and fault injection."""
