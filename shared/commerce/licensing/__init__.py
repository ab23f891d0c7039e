"""The license API: machine activations, offline certificates, signed answers, updates.

`verifier` is the self-contained reference verifier (standard library + cryptography)
that documents the certificate format in executable form; see docs/license-format.md.
"""
