"""`python -m safepoint`: the same command line as the `safepoint` console script."""

from .cli import main

if __name__ == "__main__":
    main()
