"""`python gatys.py ...`: see README. The logic lives in fastnst.gatys; this is the Hydra shim."""

from fastnst.cli import gatys_main

if __name__ == "__main__":
    gatys_main()
