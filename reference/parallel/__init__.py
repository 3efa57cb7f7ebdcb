"""The pass split over N ranks, as Meta's model-parallel shards split it (`split.py`), and the
commands run on those ranks under torchrun, each rank's place passed as a `Ranks` value
(`torchrun.py`). `model.py` never learns about ranks.
"""
