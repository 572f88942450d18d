"""``python -m chestclip``: the command line, e.g. under ``torchrun -m chestclip run ...``."""

from chestclip.cli import main

if __name__ == "__main__":
    main()
