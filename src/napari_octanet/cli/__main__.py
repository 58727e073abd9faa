"""``python -m napari_octanet.cli``: the same as the ``octanet`` console script."""

import sys

from . import main

sys.exit(main())
