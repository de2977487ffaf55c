"""dfseg: Partial Order Pruning (CVPR 2019) reproduced.

``dfseg.base`` is floor 0 (atomic writes, sizes, the one error path, text files): it imports
nothing else of dfseg, and every other package may import it.  The ``dfseg`` command itself
(floor 5) sits above everything; docs/architecture.md draws the floors.
"""
