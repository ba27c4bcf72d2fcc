import sys

from vfmbench.cli import app

sys.exit(app())
