"""falsr: multi-objective NAS for fast, accurate and lightweight super-resolution."""
