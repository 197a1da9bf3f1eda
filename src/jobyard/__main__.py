"""``python -m jobyard``: the same command as ``jobyard``."""

from jobyard.cli.main import main

if __name__ == "__main__":
    main()
