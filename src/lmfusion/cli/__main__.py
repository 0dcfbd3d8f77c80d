"""`python -m lmfusion.cli`: the `lmfusion` command."""

from lmfusion.cli.main import main

main()
