"""Document interoperability gateway for the QLVB&ĐHTN systems of Vietnamese state agencies."""

__version__ = "0.1.0"
