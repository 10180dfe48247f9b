"""`python evaluate.py run=<run dir>`: see docs/compare.md. The logic lives in fastnst.evaluate."""

from fastnst.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main()
