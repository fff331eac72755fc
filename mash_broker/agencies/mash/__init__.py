"""The MASH itself: the council's front door (``la:<code>``), the hub (``mash:<id>``) and the agencies
with no system of their own here (housing, a web form), all on the MASH's topics. Its plug-in is
``agency.MASH``."""
