"""Benchmark support: BEIR loading, IR metrics, and the reference systems ragtune is compared against."""
