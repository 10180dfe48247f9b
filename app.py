"""`python app.py [models=outputs/] [port=7860]`: the local web app (see docs/webapp.md).
The logic lives in fastnst.apps.web; this is the Hydra shim."""

from fastnst.cli import app_main

if __name__ == "__main__":
    app_main()
