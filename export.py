"""`python export.py ...`: see README. The logic lives in fastnst.export; this is the Hydra shim."""

from fastnst.cli import export_main

if __name__ == "__main__":
    export_main()
