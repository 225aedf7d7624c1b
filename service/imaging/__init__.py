"""Untrusted image bytes → the 28×28 input the model expects: decoding and preprocessing."""
