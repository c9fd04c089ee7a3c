"""Largage aérien: send files (OTDL) or a folder (MOTDL) once to a nearby device, which accepts or declines.

Both kinds travel as a tar stream in DATA frames after the offer is accepted; the offer's payload is a JSON
manifest (names, sizes, sha256). The receiver:

- asks its user through the ``.btf`` prompts (flag OTDL or MOTDL) with sender, names, count and size;
  an unanswered offer expires after ``offer_timeout`` seconds (default 120); declining writes nothing;
- accepts offers from linked devices, and from any nearby device only when the "everyone" setting is on;
  a device whose offer was declined is not asked about again during ``cooldown`` seconds (default 300);
- streams what arrives into ``largage_aerien/.partial-<offer>/`` through a bounded queue (a few MiB of
  memory whatever the size), refuses any member escaping that folder, links pointing out, device files
  or anything not in the manifest, checks each file's size and sha256, and only then moves the top-level
  entries into ``largage_aerien/`` under names that clobber nothing. Any failure, decline or cancel
  removes the partial folder.

Modules: ``offers`` (an offer and its state machine), ``files`` (manifest and safe unpacking),
``service`` (the daemon's side: offers in and out over sessions).
"""

from .files import build_manifest, extract_offer, non_clobbering
from .offers import FINAL_STATES, IllegalTransition, Offer, OfferState
from .service import LargageService, PeerDirectory

__all__ = ["FINAL_STATES", "IllegalTransition", "LargageService", "Offer", "OfferState", "PeerDirectory",
           "build_manifest", "extract_offer", "non_clobbering"]
