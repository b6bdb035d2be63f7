from gentriage.cli import run

run()
