import sys

from z4_assets.cli import main

sys.exit(main())
