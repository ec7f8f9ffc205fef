"""The load generator: `faceflow bench`'s engine, also used by the scripts in ``bench/``.

Not needed to serve: nothing in the service imports it (the import contract keeps it so), and its
chart needs the ``loadgen`` extra (``pip install 'faceflow[loadgen]'``).
"""
