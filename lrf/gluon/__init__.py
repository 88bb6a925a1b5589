"""MXNet Gluon engine for lrf (imported only at the edges: the core never imports MXNet)."""

from lrf.gluon.cuda_libraries import make_findable

make_findable()  # before any of this package's modules imports mxnet: see lrf.gluon.cuda_libraries
