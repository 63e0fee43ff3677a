"""Benchmarks (not tests): each module's ``main()`` prints its figures and writes them to bench/results/."""
