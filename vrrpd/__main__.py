"""`python -m vrrpd` runs the vrrpd command line."""

import sys

from vrrpd.cli import main

sys.exit(main())
