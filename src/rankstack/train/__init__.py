"""Learning to rank: losses, negative mining, batch sampling and trainers (needs the ``train`` extra).

Submodules import torch; ``import rankstack.train`` itself stays light.
"""
