"""``python -m gateway``: the ``gateway`` command, for when the console script is not on PATH."""

from gateway.command import main

if __name__ == "__main__":
    main()
