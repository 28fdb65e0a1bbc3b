"""Checks a row cannot fool, one module per verifier (registered in `synthfactory.registry.VERIFIERS`)."""

from synthfactory.verify.base import Claim, Verdict, Verifier, VerifierOptions

__all__ = ["Claim", "Verdict", "Verifier", "VerifierOptions"]
