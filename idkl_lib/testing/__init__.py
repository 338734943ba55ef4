"""Reference implementations the tests and the benchmarks both check against (slow on purpose, never used in
training): :mod:`idkl_lib.testing.naive_losses`, per-sample transcriptions of the IDKL losses."""
