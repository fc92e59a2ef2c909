from aiinfra.cli.main import run

run()
