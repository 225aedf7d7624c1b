"""`python -m service`: the server's command line (`service/server/cli.py`)."""

import sys

from service.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
