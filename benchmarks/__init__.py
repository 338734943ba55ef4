"""Speed and memory benchmarks of idkl_lib; run each with ``python -m benchmarks.<name>`` (see README.md)."""
