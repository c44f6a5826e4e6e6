"""Classical post-processing: reconciliation, verification, privacy amplification, authentication.

Works on bits and numbers only (never imports :mod:`diqkd.physics`). Two honest levels:
primitives (:func:`toeplitz_hash`, :func:`verification_tag`, :class:`CascadeAlice`,
:class:`CascadeBob`) and safe recipes (:func:`reconcile`, :func:`privacy_amplify`,
:func:`verify_keys`, :class:`Authenticator`). See ``docs/postprocessing.md``.
"""

from diqkd.postproc.auth import Authenticator, KeyPool, poly1305_forgery_bound
from diqkd.postproc.cascade import CascadeAlice, CascadeBob, run_cascade
from diqkd.postproc.keys import KeyBlock, read_keys, write_keys
from diqkd.postproc.ledger import LeakLedger
from diqkd.postproc.reconcile import ReconciliationResult, efficiency, reconcile
from diqkd.postproc.toeplitz import ToeplitzHasher, privacy_amplify, toeplitz_hash
from diqkd.postproc.verify import epsilon_ec, verification_tag, verify_keys

__all__ = [
    "Authenticator",
    "CascadeAlice",
    "CascadeBob",
    "KeyBlock",
    "KeyPool",
    "LeakLedger",
    "ReconciliationResult",
    "ToeplitzHasher",
    "efficiency",
    "epsilon_ec",
    "poly1305_forgery_bound",
    "privacy_amplify",
    "read_keys",
    "reconcile",
    "run_cascade",
    "toeplitz_hash",
    "verification_tag",
    "verify_keys",
    "write_keys",
]
