"""`python -m weir` runs the `weir` command (tests start the operator this way)."""

from weir.cli import main

main()
