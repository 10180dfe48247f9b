"""`python stylize.py ...`: see README. The logic lives in fastnst.stylize; this is the Hydra shim."""

from fastnst.cli import stylize_main

if __name__ == "__main__":
    stylize_main()
