"""Helpers the tests share, one module per concept; a test file imports from here, never
from another test file.

  experiments  fake Tune experiment folders written from a planted outcome model
  h5           tiny HDF5 datasets in the Brain-to-Text '25 layout, with optional defects
  official     the official trainer's rnn_args.yaml, as a dict to vary and write
  studies      tiny study presets and the in-process study CLI
  training     one training run interrupted, saved and resumed
  runs         study drivers as real subprocesses with their own Ray, and what they wrote
"""
