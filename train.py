"""`python train.py ...`: see README. The logic lives in fastnst.train; this is the Hydra shim."""

from fastnst.cli import train_main

if __name__ == "__main__":
    train_main()
