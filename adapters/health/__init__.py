"""Health adapter: health visitors, school nurses and GP practices.

Empty until the front-door issue adds its flows (domestic abuse notifications for health visitors
and school nurses, looked-after notifications to GPs, s47 report requests). The police and
education adapters show the shape: a pure mapping module and a thin I/O module.
"""
