"""Applications built on fastnst (the web app: `python app.py`)."""
