"""``python -m l2o``: the command-line interface."""

from l2o.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
