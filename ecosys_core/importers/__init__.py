"""Importers turning other tools' definitions (Mackup's applications, Ludusavi's manifest) into format 2
grapins, written on the user's machine into ``ECOSYS_HOME/plugins/imported-<source>/``. Their data is
read from the user's own copy at run time and never shipped with Ecosys (Mackup's is GPL-3.0-or-later;
Ludusavi's manifest is built from PCGamingWiki data)."""
