"""One folder per agency: its pure mapping to and from the contracts, its inbox, its plug-in
(``<name>/agency.py``) and its commands. The list of them is ``registry.AGENCIES``."""
