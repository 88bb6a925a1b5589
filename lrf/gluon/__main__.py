"""``python -m lrf.gluon``: which CUDA libraries were found, and whether libmxnet.so loads
(:func:`lrf.gluon.cuda_libraries.main`)."""

import sys

from lrf.gluon.cuda_libraries import main

sys.exit(main())
