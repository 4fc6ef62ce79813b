"""`python -m fastseq ...`: the fastseq command line (see fastseq.cli)."""
import sys

from .cli import main

sys.exit(main())
