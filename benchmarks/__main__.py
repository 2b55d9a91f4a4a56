"""``python -m benchmarks``: the speed benchmark (see :mod:`benchmarks.speed`)."""

from benchmarks.speed import main

if __name__ == "__main__":
    main()
