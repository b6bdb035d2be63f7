import sys

from gentriage.cli import main

sys.exit(main())
