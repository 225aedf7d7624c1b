"""Benchmarks of the serving stack against its floor, the seed's way and a peer (`make bench`)."""
