"""The web shell: FastAPI pages and a JSON API over the same library calls as the CLI."""
