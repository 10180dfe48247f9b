"""fastnst's tests (a package: shared helpers in tests/helpers.py, fixtures in conftest.py)."""
