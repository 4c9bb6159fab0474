"""FALSR: neural architecture search for super-resolution."""
