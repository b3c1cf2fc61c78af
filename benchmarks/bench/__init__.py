"""``sslbench bench``: training and evaluation speed of the suite's ``fast`` mode against the official code's way
of running (``reference``), and a check that the fast mode learns the same (``benchmarks/README.md``)."""
