"""`python -m paydash`: the same as the `paydash` command."""

from paydash.cli import main

main()
