"""The Magasin: the Ecosys app and grapin store client (index models, httpx client, installs)."""
