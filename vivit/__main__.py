import sys

from vivit.cli import main

sys.exit(main())
