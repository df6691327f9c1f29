"""Federation: national Muster instances exchange releasable lessons as signed bundles.

``identity`` owns this instance's name, nation and Ed25519 key; ``peers`` the instances
it trusts; ``bundles`` the signed file format; ``outbound`` what a peer is sent;
``apply`` what a received bundle does here; ``cli`` the ``flask federation`` commands.
"""
