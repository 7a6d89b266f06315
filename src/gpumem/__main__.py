"""`python -m gpumem`."""

from gpumem.cli import run

if __name__ == "__main__":
    run()
