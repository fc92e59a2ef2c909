"""The `aiinfra` command line: thin typer shells over the library."""
