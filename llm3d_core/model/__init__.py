"""The 3D language model: scene encoders, location tokens, an LLM backbone, training and evaluation.

Heavy modules (torch, transformers) are imported by the submodules, not here.
"""
